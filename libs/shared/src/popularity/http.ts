import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { PopcountError } from './errors';

/** An HTTP answer, or a transport failure after every retry. */
export type FetchOutcome = { ok: true; status: number; body: Buffer } | { ok: false; error: string };

/** Options of {@link fetchWithRetries}. */
export interface RetryOptions {
  /** Attempts in all (default 3). */
  attempts?: number;
  /** Time per attempt in ms (default 15000). */
  timeoutMs?: number;
  /** First back-off in ms, doubled after each attempt (default 200). */
  backoffMs?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/**
 * GETs `url`, retrying network errors, 429 and 5xx answers with exponential
 * back-off. Any other status (404 included) is returned as is.
 */
export async function fetchWithRetries(url: string, opts: RetryOptions = {}): Promise<FetchOutcome> {
  const attempts = opts.attempts ?? 3;
  const f = opts.fetch ?? fetch;
  let last = '';
  for (let i = 0; i < attempts; i++) {
    if (opts.signal?.aborted) return { ok: false, error: 'aborted' };
    if (i > 0) await sleep((opts.backoffMs ?? 200) * 2 ** (i - 1));
    try {
      const signals = [AbortSignal.timeout(opts.timeoutMs ?? 15_000), ...(opts.signal ? [opts.signal] : [])];
      const res = await f(url, { signal: AbortSignal.any(signals), redirect: 'follow' });
      if ((res.status === 429 || res.status >= 500) && i < attempts - 1) {
        await res.body?.cancel();
        continue;
      }
      return { ok: true, status: res.status, body: Buffer.from(await res.arrayBuffer()) };
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      last = err.cause?.code ?? err.cause?.message ?? err.message;
    }
  }
  return { ok: false, error: last };
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

/** Decompresses xz data with the `xz` program (xz-utils); other data is returned as is. */
export async function maybeUnxz(data: Buffer, what: string): Promise<Buffer> {
  if (!data.subarray(0, 6).equals(XZ_MAGIC)) return data;
  return new Promise<Buffer>((resolve, reject) => {
    const child = spawn('xz', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => reject(new PopcountError('BAD_RESPONSE', `cannot decompress ${what}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new PopcountError('BAD_RESPONSE', `cannot decompress ${what}: xz: ${err.trim() || `exit ${code}`}`));
    });
    child.stdin.end(data);
  });
}
