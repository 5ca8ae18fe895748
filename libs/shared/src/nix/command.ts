import { type RunOptions, type RunResult, runCommand } from '../infra/run-command';

/** How a Nix command runs: the options for every Nix command line and the environment (NIX_CONFIG included). */
export interface NixRun {
  /** Inserted after a command's leading arguments (NIXERY_NIX_OPTIONS). */
  options: readonly string[];
  /** The command's environment. Default: this process's. */
  env?: NodeJS.ProcessEnv;
}

/** One Nix command: the program, its leading arguments (subcommand and fixed flags), then the rest. */
export interface NixCommand {
  program: string;
  head: readonly string[];
  rest: readonly string[];
}

/**
 * Runs a Nix command the one way the project runs Nix (image preparation,
 * popularity counting and the self-check alike): `program head... options...
 * rest...` in the invocation's environment, bounded in time and abortable,
 * through `runCommand` (never rejects; failures are in the result).
 */
export function runNix(nix: NixRun, cmd: NixCommand, opts: Omit<RunOptions, 'env'>): Promise<RunResult> {
  return runCommand(cmd.program, [...cmd.head, ...nix.options, ...cmd.rest], { ...opts, ...(nix.env ? { env: nix.env } : {}) });
}
