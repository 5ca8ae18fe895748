/**
 * Whether this machine can build for aarch64-linux (qemu user emulation
 * through binfmt_misc), for tests that need it. Only a kernel that refuses
 * binfmt_misc is a reason to skip; a missing arm64 tree is a set-up bug and
 * must fail the test instead.
 */
import { systemSupport } from '../../libs/shared/src/nix';

/** Why aarch64 tests must be skipped here, or null when they can run. */
export function aarch64SkipReason(): string | null {
  const support = systemSupport('aarch64-linux');
  return !support.ok && /binfmt_misc/.test(support.reason) ? support.reason : null;
}
