import { join } from 'node:path';
import type { ClosureGraph } from '../core/graph';
import { isStorePath } from '../core/store-path';
import { parsePathInfoJson } from './closure';
import type { RunResult } from '../infra/run-command';
import { runNix } from './command';
import type { NixInvocation } from './settings';
import { toNixSourceArgs, type PackageSourceArgs } from './source';

/** Options of {@link prepareImage}. */
export interface PrepareOptions {
  /** Directory holding prepare-image.nix and load-pkgs.nix (the repo's nix/). */
  nixDir: string;
  /** The package set to look packages up in. */
  source: PackageSourceArgs;
  /** Nix system, e.g. "x86_64-linux". */
  system: string;
  /** Package names as asked for ("hello", "xorg.xev", "bashinteractive"); passed to Nix as JSON data. */
  packages: string[];
  /** Time for the whole preparation (evaluation, build, closure query), in ms. */
  timeoutMs: number;
  /** Aborting kills the running Nix command. */
  signal?: AbortSignal;
  /** Extra arguments for every Nix command, e.g. ['--option', 'substituters', '']. Default none. */
  extraNixOptions?: string[];
  /** Called when a stage starts. */
  onStage?: (stage: PrepareStage) => void;
  /** Called with each line Nix writes to stderr (build logs, progress). */
  onLog?: (line: string) => void;
  /** Environment for the Nix commands. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /**
   * A directory (that the caller removes when done with the store paths) where
   * the build registers indirect GC roots (`result`, `result-2`, ...), so a
   * garbage collection while the layers are packed cannot delete them. The
   * Nix process that builds the outputs roots them before it ends, so they
   * are never unrooted in between. Default: no roots.
   */
  gcRootDir?: string;
  /** Names of the Nix programs (or absolute paths). Defaults: nix-instantiate, nix-build, nix. */
  commands?: Partial<NixCommands>;
}

/** The Nix programs prepareImage runs. */
export interface NixCommands {
  nixInstantiate: string;
  nixBuild: string;
  nix: string;
}

/** Stages of a preparation, reported through `onStage`. */
export type PrepareStage = 'evaluating' | 'building';

/** A found package: the attribute path it resolved to and its output path. */
export interface PreparedPackage {
  /** Resolved attribute path, e.g. "bashInteractive" for "bashinteractive". */
  attr: string;
  /** Store path of the built output. */
  out: string;
}

/** The outcome of a preparation; errors are data, never thrown. */
export type PrepareResult =
  | {
      kind: 'ok';
      /** Runtime closure of all found packages; roots are their output paths (request order, unique). */
      graph: ClosureGraph;
      /** Keyed by the name as requested. */
      packages: Record<string, PreparedPackage>;
    }
  /** Names (as requested, in request order) the package set does not have. Not worth retrying. */
  | { kind: 'missing'; packages: string[] }
  /** Nix failed. `transient` says whether a retry may help (timeout, abort, network, store lock...). */
  | { kind: 'failed'; message: string; transient: boolean };

/** What prepare-image.nix reports for one found package. */
interface EvalFound {
  attr: string;
  out: string;
  drv: string;
  output: string;
  name: string;
}

const DEFAULT_COMMANDS: NixCommands = { nixInstantiate: 'nix-instantiate', nixBuild: 'nix-build', nix: 'nix' };
const MESSAGE_LIMIT = 2000;

const TRANSIENT_PATTERNS: readonly RegExp[] = [
  /unable to download/i,
  /could not resolve host/i,
  /couldn't resolve host/i,
  /connection (refused|reset|timed out)/i,
  /timed? ?out/i,
  /temporary failure/i,
  /HTTP error (5\d\d|429)/i,
  /database is locked/i,
  /SQLite database .* is busy/i,
  /no space left on device/i,
  /resource temporarily unavailable/i,
  /cannot fork|fork: retry/i,
  /cannot connect to daemon/i,
];

/** Whether Nix's stderr describes a failure a retry may fix (network, locks, resources). */
export function isTransientNixError(stderr: string): boolean {
  return TRANSIENT_PATTERNS.some((re) => re.test(stderr));
}

/** Nix's stderr made fit for a message: colours removed, the last part kept, trimmed. */
export function trimNixStderr(stderr: string, limit = MESSAGE_LIMIT): string {
  // eslint-disable-next-line no-control-regex
  const plain = stderr.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').trim();
  return plain.length > limit ? `...${plain.slice(plain.length - limit)}` : plain;
}

function commandFailure(what: string, r: RunResult, timeoutMs: number): PrepareResult {
  if (r.aborted) return { kind: 'failed', message: `${what} aborted`, transient: true };
  if (r.timedOut) return { kind: 'failed', message: `${what} timed out after ${timeoutMs} ms`, transient: true };
  if (r.spawnError !== undefined) {
    return { kind: 'failed', message: `${what} could not start: ${r.spawnError}`, transient: false };
  }
  const tail = trimNixStderr(r.stderr);
  const how = r.exitSignal ? `killed by ${r.exitSignal}` : `exit ${r.code}`;
  return {
    kind: 'failed',
    message: `${what} failed (${how})${tail ? `: ${tail}` : ''}`,
    transient: r.exitSignal !== null || isTransientNixError(r.stderr),
  };
}

/** Checks prepare-image.nix's JSON; returns the parsed result or an error string. */
function parseEvalOutput(
  text: string,
  requested: readonly string[],
): { found: Record<string, EvalFound>; missing: string[] } | { error: string } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { error: `prepare-image.nix printed invalid JSON: ${(e as Error).message}` };
  }
  const d = data as { found?: unknown; missing?: unknown } | null;
  if (d === null || typeof d !== 'object' || typeof d.found !== 'object' || d.found === null || !Array.isArray(d.missing)) {
    return { error: 'prepare-image.nix printed an unexpected shape' };
  }
  const found: Record<string, EvalFound> = {};
  for (const [name, raw] of Object.entries(d.found as Record<string, unknown>)) {
    const f = raw as Partial<EvalFound> | null;
    if (
      f === null || typeof f !== 'object' || typeof f.attr !== 'string' || typeof f.out !== 'string' ||
      typeof f.drv !== 'string' || !isStorePath(f.out) || !isStorePath(f.drv) || !f.drv.endsWith('.drv')
    ) {
      return { error: `prepare-image.nix printed an unexpected entry for ${JSON.stringify(name)}` };
    }
    found[name] = {
      attr: f.attr,
      out: f.out,
      drv: f.drv,
      output: typeof f.output === 'string' && /^[A-Za-z0-9_-]+$/.test(f.output) ? f.output : 'out',
      name: typeof f.name === 'string' ? f.name : f.attr,
    };
  }
  const missingSet = new Set((d.missing as unknown[]).map(String));
  // Report in request order, once each.
  const missing = [...new Set(requested.filter((n) => missingSet.has(n)))];
  return { found, missing };
}

/**
 * Looks `packages` up in the package set with nix/prepare-image.nix, builds
 * them (`nix-build` of its `builds`, rooted in `gcRootDir`) and reads their runtime closure graph
 * (`nix path-info --json --recursive`). Never throws: unknown names come back
 * as `missing`, Nix errors (with the tail of their stderr), timeouts and
 * aborts as `failed`. Package names are passed as JSON data, never as code.
 */
export async function prepareImage(opts: PrepareOptions): Promise<PrepareResult> {
  const deadline = Date.now() + opts.timeoutMs;
  const commands = { ...DEFAULT_COMMANDS, ...opts.commands };
  const extra = opts.extraNixOptions ?? [];

  if (!Array.isArray(opts.packages) || !opts.packages.every((p) => typeof p === 'string')) {
    return { kind: 'failed', message: 'packages must be a list of strings', transient: false };
  }
  const src = toNixSourceArgs(opts.source);
  if ('error' in src) return { kind: 'failed', message: src.error, transient: false };

  const nix = { options: extra, ...(opts.env ? { env: opts.env } : {}) };
  const run = (program: string, head: string[], rest: string[]): Promise<RunResult> =>
    runNix(nix, { program, head, rest }, {
      timeoutMs: Math.max(1, deadline - Date.now()),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onLog ? { onStderrLine: opts.onLog } : {}),
    });

  // 1. Evaluate: which packages exist, and their derivations.
  opts.onStage?.('evaluating');
  const script = join(opts.nixDir, 'prepare-image.nix');
  const scriptArgs = [
    '--argstr', 'srcType', src.srcType,
    '--argstr', 'srcArgs', src.srcArgs,
    '--argstr', 'system', opts.system,
    '--argstr', 'packages', JSON.stringify(opts.packages),
  ];
  const evalRun = await run(commands.nixInstantiate, ['--eval', '--strict', '--json', '--read-write-mode'], [script, ...scriptArgs]);
  if (evalRun.code !== 0 || evalRun.timedOut || evalRun.aborted) {
    return commandFailure('nix evaluation', evalRun, opts.timeoutMs);
  }
  const evaluated = parseEvalOutput(evalRun.stdout, opts.packages);
  if ('error' in evaluated) return { kind: 'failed', message: evaluated.error, transient: false };
  if (evaluated.missing.length > 0) return { kind: 'missing', packages: evaluated.missing };

  const packages: Record<string, PreparedPackage> = {};
  for (const [name, f] of Object.entries(evaluated.found)) packages[name] = { attr: f.attr, out: f.out };
  const roots = [...new Set(opts.packages.map((n) => evaluated.found[n]?.out).filter((p): p is string => !!p))];
  if (roots.length === 0) return { kind: 'ok', graph: { roots: [], paths: {} }, packages };

  // 2. Build the wanted outputs. One nix-build evaluates, builds and roots them: realising the
  // evaluation's .drv files instead would leave them unrooted between the two processes, and a
  // garbage collection then would delete them under the build (issue 11).
  opts.onStage?.('building');
  const rootArgs = opts.gcRootDir ? ['--out-link', join(opts.gcRootDir, 'result')] : ['--no-out-link'];
  const buildRun = await run(commands.nixBuild, [script, '-A', 'builds', ...rootArgs], scriptArgs);
  if (buildRun.code !== 0 || buildRun.timedOut || buildRun.aborted) {
    return commandFailure('nix build', buildRun, opts.timeoutMs);
  }

  // 3. The runtime closure graph.
  const infoRun = await run(commands.nix, ['path-info', '--extra-experimental-features', 'nix-command'], ['--json', '--recursive', ...roots]);
  if (infoRun.code !== 0 || infoRun.timedOut || infoRun.aborted) {
    return commandFailure('nix path-info', infoRun, opts.timeoutMs);
  }
  const parsed = parsePathInfoJson(infoRun.stdout);
  if ('error' in parsed) return { kind: 'failed', message: parsed.error, transient: false };
  const { paths } = parsed;
  for (const root of roots) {
    if (!paths[root]) return { kind: 'failed', message: `closure of ${root} is missing from nix path-info`, transient: false };
  }
  return { kind: 'ok', graph: { roots, paths }, packages };
}

/** What the build pipeline asks of Nix for one image (the rest of {@link PrepareOptions} is fixed per process). */
export type PrepareRequest = Pick<PrepareOptions, 'source' | 'system' | 'packages' | 'signal' | 'onStage' | 'gcRootDir'>;

/** Image preparation as a dependency of the pipeline: real Nix here, a fixture closure in tests. */
export type Preparation = (req: PrepareRequest) => Promise<PrepareResult>;

/** The process's image preparation: {@link prepareImage} with its Nix directory, invocation and time limit. */
export function nixPreparation(opts: { nixDir: string; nix: NixInvocation; timeoutMs: number }): Preparation {
  return (req) => prepareImage({ ...req, nixDir: opts.nixDir, timeoutMs: opts.timeoutMs, extraNixOptions: opts.nix.options, env: opts.nix.env });
}
