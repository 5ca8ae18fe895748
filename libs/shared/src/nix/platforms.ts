/**
 * Which Nix systems this machine can build (issue 13). The host's own system
 * always; aarch64-linux on an x86-64 machine when the kernel runs aarch64
 * programs through qemu user emulation (a `qemu-aarch64` entry in
 * binfmt_misc, enabled) and the Debian arm64 tree the bundled package set
 * reads is there (scripts/setup-arm64.sh makes both). Nix then gets
 * `extra-platforms` for the emulated systems, so it accepts derivations whose
 * `system` is one of them; their builders are aarch64 programs run by qemu.
 *
 * Systems are plain strings here (the `nix` room does not import `protocol`).
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import type { NixInvocation } from './settings';

/** Where scripts/setup-arm64.sh unpacks Debian's arm64 packages (keep in step with it and nix/pkgs/lib.nix). */
export const DEBIAN_ARM64_ROOT = '/var/cache/nixery/debian-arm64/root';

/** Where the kernel lists its binfmt_misc entries. */
export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

/** The Nix system of this machine. */
export function hostNixSystem(): string {
  return os.arch() === 'arm64' ? 'aarch64-linux' : 'x86_64-linux';
}

/** How a system is built here: natively, through emulation, or not at all (with the reason and the fix). */
export type SystemSupport =
  | { ok: true; emulated: boolean }
  | { ok: false; reason: string };

/** Paths read by {@link systemSupport} (tests point them elsewhere). */
export interface PlatformPaths {
  /** binfmt_misc directory (default {@link BINFMT_DIR}). */
  binfmtDir?: string;
  /** The Debian arm64 tree (default {@link DEBIAN_ARM64_ROOT}). */
  arm64Root?: string;
  /** This machine's system (default {@link hostNixSystem}). */
  host?: string;
}

const SETUP_HINT = 'run scripts/setup-arm64.sh as root (npm start with NIXERY_PLATFORMS=linux/amd64,linux/arm64 runs it)';

/** Can this machine build `system`? Reads two small files; never throws. */
export function systemSupport(system: string, paths: PlatformPaths = {}): SystemSupport {
  const host = paths.host ?? hostNixSystem();
  if (system === host) return { ok: true, emulated: false };
  if (system !== 'aarch64-linux' || host !== 'x86_64-linux') {
    return { ok: false, reason: `no emulation of ${system} on a ${host} machine is known to Nixery` };
  }
  const entry = `${paths.binfmtDir ?? BINFMT_DIR}/qemu-aarch64`;
  let text: string;
  try {
    text = readFileSync(entry, 'utf8');
  } catch {
    return { ok: false, reason: `the kernel runs no aarch64 programs: binfmt_misc has no qemu-aarch64 entry (${entry}); ${SETUP_HINT}` };
  }
  if (text.split('\n')[0]?.trim() !== 'enabled') {
    return { ok: false, reason: `the binfmt_misc entry qemu-aarch64 is disabled (${entry}); ${SETUP_HINT}` };
  }
  const busybox = `${paths.arm64Root ?? DEBIAN_ARM64_ROOT}/bin/busybox`;
  if (!existsSync(busybox)) {
    return { ok: false, reason: `the Debian arm64 tree of the bundled package set is missing (${busybox}); ${SETUP_HINT}` };
  }
  return { ok: true, emulated: true };
}

/**
 * The invocation with `extra-platforms` naming `systems` (the emulated ones),
 * placed before every other NIX_CONFIG line (the project's settings are the
 * lowest of Nixery's own sources; see settings.ts). No systems: `nix` itself.
 */
export function withExtraPlatforms(nix: NixInvocation, systems: readonly string[]): NixInvocation {
  if (systems.length === 0) return nix;
  const rest = nix.env.NIX_CONFIG ?? '';
  return { ...nix, env: { ...nix.env, NIX_CONFIG: `extra-platforms = ${systems.join(' ')}${rest ? `\n${rest}` : ''}` } };
}

/** A program that can build the self-check's derivation for `system` (a shell of that system) and its arguments before the script. */
export function selfCheckBuilder(system: string, paths: PlatformPaths = {}): { builder: string; args: string[] } {
  if (system === (paths.host ?? hostNixSystem())) return { builder: '/bin/sh', args: ['-c'] };
  return { builder: `${paths.arm64Root ?? DEBIAN_ARM64_ROOT}/bin/busybox`, args: ['sh', '-c'] };
}
