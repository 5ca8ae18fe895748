import type { Popularity } from '../core/graph';
import type { Logger } from '../infra/logger';
import { isStorePath } from '../core/store-path';
import type { RunResult } from '../infra/run-command';
import { type PackageSourceArgs, parsePathInfoJson, runNix, toNixSourceArgs, trimNixStderr } from '../nix';
import type { NixInvocation } from '../nix';
import { countReferences } from './counts';
import { PopcountError } from './errors';
import type { PopcountProgress } from './types';

/**
 * Lists a package set's top-level derivations (and those of nested sets that
 * ask for it with `recurseForDerivations`, as nixpkgs' do). Each attribute is
 * evaluated under `tryEval`: one that throws is reported as failed, not fatal.
 * `only` (JSON list of names, or "") limits the walk to some top-level names.
 * The code is fixed; the source arrives as JSON data.
 */
const ENUMERATE_NIX = `
{ srcType, srcArgs, nixDir, system, only }:
let
  pkgs = import (/. + nixDir + "/load-pkgs.nix") {
    inherit srcType;
    srcArgs = builtins.fromJSON srcArgs;
    importArgs = { inherit system; };
  };
  entry = path: v:
    let
      r = builtins.tryEval (
        let x =
          if builtins.isAttrs v && (v.type or null) == "derivation" then
            [ { attr = path; out = v.outPath; drv = v.drvPath; output = v.outputName or "out"; } ]
          else if builtins.isAttrs v && (v.recurseForDerivations or false) == true then
            builtins.concatMap (n: entry "\${path}.\${n}" v.\${n}) (builtins.attrNames v)
          else [ ];
        in builtins.deepSeq x x);
    in if r.success then r.value else [ { attr = path; failed = true; } ];
  names = if only == "" then builtins.attrNames pkgs else builtins.fromJSON only;
in
builtins.concatMap (n: entry n pkgs.\${n}) names
`;

/** What Nix listed for one attribute. */
interface Enumerated {
  attr: string;
  out?: string;
  drv?: string;
  output?: string;
  failed?: boolean;
}

/** Options of {@link countLocalSet}. */
export interface LocalCountOptions {
  source: PackageSourceArgs;
  nixDir: string;
  system: string;
  /** How Nix commands run (options and environment). */
  nix: NixInvocation;
  /** Build the packages first (`nix-store --realise --keep-going`); otherwise count only what is in the store. */
  realise: boolean;
  /** Deadline of the whole count (ms since the epoch). */
  deadline: number;
  signal?: AbortSignal;
  onProgress?: (p: PopcountProgress) => void;
  log?: Logger;
}

/** The counts of a package set and what was seen and skipped. */
export interface LocalCount {
  table: Popularity;
  /** Top-level packages (distinct output paths) whose references were read. */
  seen: number;
  /** Packages left out: attributes that failed to evaluate, outputs that are not built. */
  skipped: number;
}

/**
 * Counts references in a git or local package set: enumerates its top-level
 * derivations with Nix, builds them unless `realise` is false (failures are
 * skipped, not fatal), and reads the references of every output in the store
 * (`nix path-info --json`). Same counting rules as the channel method.
 */
export async function countLocalSet(opts: LocalCountOptions): Promise<LocalCount> {
  const src = toNixSourceArgs(opts.source);
  if ('error' in src) throw new PopcountError('SOURCE', src.error);
  const run = (program: string, head: string[], rest: string[]): Promise<RunResult> => {
    const left = opts.deadline - Date.now();
    if (left <= 0) throw new PopcountError('TIMEOUT', 'popcount run took longer than NIXERY_POPCOUNT_TIMEOUT');
    return runNix(opts.nix, { program, head, rest }, { timeoutMs: left, ...(opts.signal ? { signal: opts.signal } : {}) });
  };
  const failure = (what: string, r: RunResult): PopcountError => {
    if (r.timedOut || r.aborted) return new PopcountError('TIMEOUT', `${what} timed out or was cancelled`);
    return new PopcountError('NIX_FAILED', `${what} failed: ${trimNixStderr(r.stderr, 1000) || r.spawnError || `exit ${r.code}`}`);
  };
  const enumerate = async (only: string[] | null): Promise<RunResult> =>
    run('nix-instantiate', ['--eval', '--strict', '--json', '--read-write-mode'], [
      '--expr', ENUMERATE_NIX,
      '--argstr', 'srcType', src.srcType,
      '--argstr', 'srcArgs', src.srcArgs,
      '--argstr', 'nixDir', opts.nixDir,
      '--argstr', 'system', opts.system,
      '--argstr', 'only', only ? JSON.stringify(only) : '',
    ]);

  // 1. Enumerate: all at once; when something escapes tryEval (abort, infinite
  //    recursion), name by name in batches, skipping what fails.
  opts.onProgress?.({ stage: 'evaluating' });
  let listed: Enumerated[];
  const all = await enumerate(null);
  if (all.code === 0) {
    listed = parseEnumerated(all.stdout);
  } else {
    if (all.timedOut || all.aborted) throw failure('evaluating the package set', all);
    opts.log?.warn({ error: trimNixStderr(all.stderr, 500) }, 'popcount: evaluating the whole package set failed; evaluating attribute by attribute');
    const namesRun = await run('nix-instantiate', ['--eval', '--strict', '--json'], [
      '--expr', `{ srcType, srcArgs, nixDir, system }: builtins.attrNames (import (/. + nixDir + "/load-pkgs.nix") { inherit srcType; srcArgs = builtins.fromJSON srcArgs; importArgs = { inherit system; }; })`,
      '--argstr', 'srcType', src.srcType, '--argstr', 'srcArgs', src.srcArgs,
      '--argstr', 'nixDir', opts.nixDir, '--argstr', 'system', opts.system,
    ]);
    if (namesRun.code !== 0) throw failure('evaluating the package set', namesRun);
    const names = JSON.parse(namesRun.stdout) as string[];
    listed = [];
    for (let i = 0; i < names.length; i += 100) {
      const batch = names.slice(i, i + 100);
      const r = await enumerate(batch);
      if (r.code === 0) {
        listed.push(...parseEnumerated(r.stdout));
        continue;
      }
      for (const name of batch) {
        const one = await enumerate([name]);
        listed.push(...(one.code === 0 ? parseEnumerated(one.stdout) : [{ attr: name, failed: true }]));
      }
      opts.onProgress?.({ stage: 'evaluating', done: Math.min(i + 100, names.length), total: names.length });
    }
  }
  const failedAttrs = listed.filter((e) => e.failed).length;
  const byOut = new Map<string, Enumerated>();
  for (const e of listed) if (!e.failed && e.out && !byOut.has(e.out)) byOut.set(e.out, e);
  if (byOut.size === 0) throw new PopcountError('NOTHING_COUNTED', `the package set has no derivations (${failedAttrs} attributes failed to evaluate)`);
  const outs = [...byOut.keys()].sort();

  // 2. Build what is not built yet; what fails to build is skipped below.
  if (opts.realise) {
    opts.onProgress?.({ stage: 'building', total: outs.length });
    const targets = [...new Set([...byOut.values()].map((e) => `${e.drv}!${e.output ?? 'out'}`))].sort();
    for (let i = 0; i < targets.length; i += 500) {
      const r = await run('nix-store', ['--realise', '--keep-going'], targets.slice(i, i + 500));
      if (r.timedOut || r.aborted) throw failure('building the package set', r);
      if (r.code !== 0) opts.log?.warn({ error: trimNixStderr(r.stderr, 500) }, 'popcount: some packages failed to build; they are skipped');
      opts.onProgress?.({ stage: 'building', done: Math.min(i + 500, targets.length), total: targets.length });
    }
  }

  // 3. Which outputs are in the store, and their references.
  opts.onProgress?.({ stage: 'querying', total: outs.length });
  const invalid = new Set<string>();
  const refs = new Map<string, string[]>();
  for (let i = 0; i < outs.length; i += 500) {
    const chunk = outs.slice(i, i + 500);
    const check = await run('nix-store', ['--check-validity', '--print-invalid'], chunk);
    if (check.code !== 0) throw failure('checking store paths', check);
    for (const line of check.stdout.split('\n')) if (line.trim()) invalid.add(line.trim());
    const valid = chunk.filter((p) => !invalid.has(p));
    if (valid.length === 0) continue;
    const info = await run('nix', ['path-info', '--extra-experimental-features', 'nix-command'], ['--json', ...valid]);
    if (info.code !== 0) throw failure('nix path-info', info);
    const parsed = parsePathInfoJson(info.stdout);
    if ('error' in parsed) throw new PopcountError('NIX_FAILED', parsed.error);
    for (const p of valid) {
      const entry = parsed.paths[p];
      if (entry) refs.set(p, entry.references);
    }
    opts.onProgress?.({ stage: 'querying', done: Math.min(i + 500, outs.length), total: outs.length });
  }
  if (refs.size === 0) throw new PopcountError('NOTHING_COUNTED', `none of the ${outs.length} packages of the set is built`);
  opts.onProgress?.({ stage: 'counting' });
  return { table: countReferences(refs.values()), seen: refs.size, skipped: failedAttrs + (outs.length - refs.size) };
}

function parseEnumerated(text: string): Enumerated[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new PopcountError('NIX_FAILED', `enumerating the package set printed invalid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(data)) throw new PopcountError('NIX_FAILED', 'enumerating the package set printed an unexpected shape');
  return data.flatMap((raw: unknown): Enumerated[] => {
    const e = raw as Partial<Enumerated> | null;
    if (!e || typeof e.attr !== 'string') return [];
    if (e.failed) return [{ attr: e.attr, failed: true }];
    if (typeof e.out !== 'string' || typeof e.drv !== 'string' || !isStorePath(e.out) || !isStorePath(e.drv)) {
      return [{ attr: e.attr, failed: true }];
    }
    const output = typeof e.output === 'string' && /^[A-Za-z0-9_-]+$/.test(e.output) ? e.output : 'out';
    return [{ attr: e.attr, out: e.out, drv: e.drv, output }];
  });
}
