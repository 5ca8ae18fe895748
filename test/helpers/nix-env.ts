/**
 * The environment tests give the Nix commands they run themselves: the same
 * project settings (NIX_CONFIG) every Nixery process gives its own.
 */
import { nixEnvironment } from '../../libs/shared/src/nix/settings';

/** This process's environment plus the project's NIX_CONFIG. */
export const NIX_ENV: Record<string, string> = nixEnvironment(process.env, { root: process.getuid?.() === 0 });
