import type { LoadOutcome } from './refresh';
import { isCommit } from './git';

/**
 * Asks a channel server for a channel's current nixpkgs revision:
 * `GET <base>/<channel>/git-revision` (what channels.nixos.org serves, and
 * what Nixery's popcount reads), expecting 40 hex characters. Failures
 * (network, status, unexpected body, timeout) come back as data.
 */
export async function fetchChannelRevision(
  baseUrl: string,
  channel: string,
  timeoutMs: number,
  f: typeof fetch = fetch,
): Promise<LoadOutcome<string>> {
  const url = `${baseUrl}/${encodeURIComponent(channel)}/git-revision`;
  try {
    const res = await f(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
    const text = (await res.text()).trim();
    if (!res.ok) return { ok: false, error: `${url} answered ${res.status}` };
    if (!isCommit(text)) return { ok: false, error: `${url} did not answer a 40-hex revision` };
    return { ok: true, value: text };
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return { ok: false, error: `${url}: ${e instanceof Error ? e.message : String(e)}${cause}` };
  }
}
