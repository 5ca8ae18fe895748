/**
 * What the benchmarks share: wrk runs and their reports, medians, and a
 * process's resident memory read from /proc (issue 15).
 */
import { readFileSync } from 'node:fs';
import { runChecked } from '../test/helpers/proc';

/** The median of `xs` (the upper one of an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** What one wrk run reports. */
export interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Response bytes per second (wrk's Transfer/sec). */
  bytesPerSec: number;
  /** Non-2xx/3xx answers plus socket errors. */
  errors: number;
}

/** How to load one URL with wrk. */
export interface WrkOptions {
  connections: number;
  seconds: number;
  /** wrk threads; default min(2, connections). */
  threads?: number;
  headers?: Record<string, string>;
}

function toMs(v: string, unit: string): number {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/** Runs wrk against `url` and reads requests/s, p50, p99, bytes/s and errors from its report. */
export async function wrk(url: string, opts: WrkOptions): Promise<WrkResult> {
  const threads = opts.threads ?? Math.min(2, opts.connections);
  const headers = Object.entries(opts.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const out = (
    await runChecked('wrk', [`-t${threads}`, `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', ...headers, url], {
      timeoutMs: (opts.seconds + 30) * 1000,
    })
  ).stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  const transfer = /Transfer\/sec:\s+([\d.]+)([KMGT]?B)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0);
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk output:\n${out}`);
  return {
    rps,
    p50ms: pct('50'),
    p99ms: pct('99'),
    bytesPerSec: transfer ? Number(transfer[1]) * SIZE_UNITS[transfer[2]!]! : NaN,
    errors,
  };
}

/** A process's resident set now (VmRSS) and its peak so far (VmHWM), in bytes; null once it is gone. */
export function residentMemory(pid: number): { rss: number; hwm: number } | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Samples a process's VmRSS every `everyMs` until stopped; `stop` gives the highest sample. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number } {
  let peak = residentMemory(pid)?.rss ?? 0;
  const timer = setInterval(() => {
    const m = residentMemory(pid);
    if (m && m.rss > peak) peak = m.rss;
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      const m = residentMemory(pid);
      return Math.max(peak, m?.rss ?? 0);
    },
  };
}
