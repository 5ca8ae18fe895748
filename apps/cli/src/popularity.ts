import { readFile } from 'node:fs/promises';
import {
  type Config,
  type Logger,
  type NixSystem,
  type Popularity,
  type ResolvedSource,
  countLocalSet,
  popularityThresholdFor,
  scaleTable,
} from '@nixery/shared';
import { CliError, EXIT_USAGE } from './errors';

/** Where the build's popularity table comes from (`--popularity`, else NIX_POPULARITY_URL, else none). */
export type PopularityChoice = { kind: 'none' } | { kind: 'url'; url: string } | { kind: 'file'; path: string } | { kind: 'local' };

/** `--popularity VALUE`: `local`, `none`, an http(s) URL, or a file; without it NIX_POPULARITY_URL, as the workers use it. */
export function popularityChoice(value: string | undefined, config: Pick<Config, 'popularityUrl'>): PopularityChoice {
  if (value === undefined) return config.popularityUrl ? { kind: 'url', url: config.popularityUrl } : { kind: 'none' };
  if (value === 'local' || value === 'none') return { kind: value };
  if (/^https?:\/\//.test(value)) return { kind: 'url', url: value };
  return { kind: 'file', path: value };
}

function parseTable(text: string, from: string): Popularity {
  let table: unknown;
  try {
    table = JSON.parse(text);
  } catch {
    throw new CliError(`popularity table ${from} is not JSON`, EXIT_USAGE);
  }
  if (typeof table !== 'object' || table === null || Array.isArray(table) || Object.values(table).some((n) => typeof n !== 'number')) {
    throw new CliError(`popularity table ${from} is not an object of counts`, EXIT_USAGE);
  }
  return table as Popularity;
}

/** What counting a package set locally needs. */
export interface PopularityContext {
  config: Pick<Config, 'nixDir' | 'nix' | 'popcount'>;
  source: ResolvedSource;
  system: NixSystem;
  log: Logger;
  signal: AbortSignal;
}

/**
 * Loads the table. A URL or file is used as it is (as the workers use the
 * NIX_POPULARITY_URL seed); `local` counts the package set with Nix as the
 * popularity job does and scales it the way the workers' reader does, so a
 * registry that counted the same set layers the same way.
 */
export async function loadPopularity(choice: PopularityChoice, ctx: PopularityContext): Promise<Popularity> {
  switch (choice.kind) {
    case 'none':
      return {};
    case 'file': {
      const text = await readFile(choice.path, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new CliError(`cannot read popularity file ${choice.path}: ${e.code ?? e.message}`, EXIT_USAGE);
      });
      return parseTable(text, choice.path);
    }
    case 'url': {
      const res = await fetch(choice.url, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(30_000)]) }).catch((e: unknown) => {
        throw new CliError(`cannot fetch popularity table ${choice.url}: ${e instanceof Error ? e.message : String(e)}`);
      });
      if (!res.ok) throw new CliError(`cannot fetch popularity table ${choice.url}: HTTP ${res.status}`);
      return parseTable(await res.text(), choice.url);
    }
    case 'local': {
      if (ctx.source.nix.type === 'nixpkgs') {
        throw new CliError('--popularity local counts git and local package sets; for a channel give NIX_POPULARITY_URL or a file', EXIT_USAGE);
      }
      const counted = await countLocalSet({
        source: ctx.source.nix,
        nixDir: ctx.config.nixDir,
        system: ctx.system,
        nix: ctx.config.nix,
        realise: ctx.config.popcount.realise,
        deadline: Date.now() + ctx.config.popcount.timeoutSeconds * 1000,
        signal: ctx.signal,
        log: ctx.log,
      });
      return scaleTable(counted.table, popularityThresholdFor(counted.seen));
    }
  }
}
