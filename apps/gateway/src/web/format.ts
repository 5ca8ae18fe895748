/** Small formatting helpers for the web pages (pure, no HTML). */

/** "1.2 MiB", "512 B". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** "850 ms", "12.3 s", "4 min 05 s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
}

/** "3 min ago" for an epoch-ms time. */
export function formatAgo(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export { storePathName } from '@nixery/shared';

/** An image reference as people type it: the name, with `:tag` unless the tag is latest. */
export function imageRef(image: string, tag: string): string {
  return tag === 'latest' ? image : `${image}:${tag}`;
}

/** Words people read for a build stage. */
export function describeStage(stage: string, packed?: number, total?: number): string {
  switch (stage) {
    case 'queued':
      return 'waiting for a worker';
    case 'evaluating':
      return 'evaluating packages';
    case 'building':
      return 'building store paths';
    case 'layering':
      return 'grouping the closure into layers';
    case 'packing':
      return total ? `packing layer ${packed ?? 0} of ${total}` : 'packing layers';
    case 'uploading':
      return 'writing config and manifest';
    case 'done':
      return 'done';
    default:
      return stage;
  }
}

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** The host a page was reached by, if it looks like a host[:port]; otherwise `fallback`. */
export function pageHost(requested: string | undefined, fallback: string): string {
  return requested && requested.length <= 260 && HOST_RE.test(requested) ? requested : fallback;
}
