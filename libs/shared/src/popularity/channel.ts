import type { Popularity } from '../core/graph';
import { mapLimit } from '../core/map-limit';
import type { Logger } from '../infra/logger';
import { countReferences } from './counts';
import { PopcountError } from './errors';
import { fetchWithRetries, maybeUnxz } from './http';
import { type StorePathItem, parseNarinfo, parseStorePathLine } from './narinfo';
import type { NarinfoCache } from './publish';
import type { PopcountProgress } from './types';

/** Options of {@link countChannel}. */
export interface ChannelCountOptions {
  /** The channel's store-paths list (xz or plain text, one store path a line). */
  storePathsUrl: string;
  /** The binary cache holding `<hash>.narinfo` files. */
  cacheUrl: string;
  /** narinfo downloads at once. */
  concurrency: number;
  cache?: NarinfoCache;
  signal?: AbortSignal;
  onProgress?: (p: PopcountProgress) => void;
  log?: Logger;
  fetch?: typeof fetch;
}

/** The counts of a channel and what was seen and skipped. */
export interface ChannelCount {
  table: Popularity;
  /** Store paths whose references were read. */
  seen: number;
  /** Store paths the cache does not have (404) or answered badly for: left out. */
  skipped: number;
  /** Lines of the list that are not store paths. */
  ignoredLines: number;
  /** narinfo files downloaded (the others came from the narinfo cache). */
  fetched: number;
}

/**
 * Nixery's popcount method: downloads the channel's list of store paths, reads
 * each path's `References:` line from the binary cache's narinfo file (bounded
 * concurrency, retries, cached between runs) and counts references by name.
 * A path missing from the cache is skipped and counted; a cache that cannot be
 * reached, or that answers with something that is not a narinfo for every
 * path, fails the run with a PopcountError.
 */
export async function countChannel(opts: ChannelCountOptions): Promise<ChannelCount> {
  const base = opts.cacheUrl.replace(/\/+$/, '');
  opts.onProgress?.({ stage: 'listing' });
  const listRes = await fetchWithRetries(opts.storePathsUrl, { signal: opts.signal, fetch: opts.fetch });
  if (!listRes.ok) throw new PopcountError('UNREACHABLE', `cannot download the store-paths list ${opts.storePathsUrl}: ${listRes.error}`);
  if (listRes.status !== 200) {
    throw new PopcountError('BAD_RESPONSE', `cannot download the store-paths list ${opts.storePathsUrl}: HTTP ${listRes.status}`);
  }
  const text = (await maybeUnxz(listRes.body, opts.storePathsUrl)).toString('utf8');
  const items = new Map<string, StorePathItem>();
  let ignoredLines = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const item = parseStorePathLine(line);
    if (item) items.set(item.hash, item);
    else ignoredLines++;
  }
  if (items.size === 0) {
    throw new PopcountError('BAD_RESPONSE', `the store-paths list ${opts.storePathsUrl} holds no store paths (${ignoredLines} other lines)`);
  }

  const hashes = [...items.keys()];
  const known = opts.cache ? await opts.cache.load(hashes) : new Map<string, string[]>();
  const todo = hashes.filter((h) => !known.has(h));
  opts.log?.info({ paths: hashes.length, cached: known.size, toFetch: todo.length }, 'popcount: reading narinfo files');

  const refs = new Map<string, string[]>(known);
  let missing = 0;
  let invalid = 0;
  let firstInvalid = '';
  let done = 0;
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const total = todo.length;
  let lastReport = 0;
  const report = () => {
    const now = Date.now();
    if (now - lastReport < 500 && done !== total) return;
    lastReport = now;
    opts.onProgress?.({ stage: 'fetching', done, total });
  };

  await mapLimit(todo, opts.concurrency, async (hash) => {
    const url = `${base}/${hash}.narinfo`;
    const res = await fetchWithRetries(url, { signal, fetch: opts.fetch });
    if (!res.ok) {
      if (signal.aborted) throw new PopcountError('TIMEOUT', 'popcount run cancelled or timed out while reading narinfo files');
      stop.abort(); // the first failure ends the run: cancel the fetches in flight
      throw new PopcountError('UNREACHABLE', `cannot reach the binary cache ${base}: ${res.error} (fetching ${url})`);
    }
    if (res.status === 404 || res.status === 410) missing++;
    else if (res.status !== 200) {
      invalid++;
      firstInvalid ||= `${url}: HTTP ${res.status}`;
    } else {
      const parsed = parseNarinfo(res.body.toString('utf8'));
      const item = items.get(hash)!;
      if (!parsed.ok) {
        invalid++;
        firstInvalid ||= `${url}: ${parsed.error}`;
      } else if (parsed.storePath !== item.path) {
        invalid++;
        firstInvalid ||= `${url}: describes ${parsed.storePath}, not ${item.path}`;
      } else {
        refs.set(hash, parsed.references);
      }
    }
    done++;
    report();
  });
  if (opts.signal?.aborted) throw new PopcountError('TIMEOUT', 'popcount run cancelled or timed out while reading narinfo files');

  if (refs.size === 0) {
    throw new PopcountError(
      'BAD_RESPONSE',
      `no narinfo of the ${items.size} listed store paths could be read from ${base} ` +
        `(${missing} missing, ${invalid} not narinfo files${firstInvalid ? `, e.g. ${firstInvalid}` : ''})`,
    );
  }
  if (invalid > 0) opts.log?.warn({ invalid, example: firstInvalid }, 'popcount: some narinfo files could not be read; skipped');
  opts.onProgress?.({ stage: 'counting', done: total, total });
  await opts.cache?.replace(refs);
  return {
    table: countReferences(refs.values()),
    seen: refs.size,
    skipped: missing + invalid,
    ignoredLines,
    fetched: todo.length,
  };
}
