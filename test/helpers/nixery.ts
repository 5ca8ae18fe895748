import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './proc';

export { freePort };

export const REPO = path.resolve(__dirname, '../..');

/** A Nixery process started for a test. */
export interface NixeryInstance {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, for registry clients. */
  host: string;
  port: number;
  storagePath: string;
  logFile: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `src/single-node.ts` (what `npm start` runs) in a child process with a
 * temporary storage path and its own embedded Redis, and waits for /v2/.
 * `entry` selects another entry point (e.g. an app's main.ts) with the same env handling;
 * `wrap` is a command prefix it runs under (e.g. a private Nix store's, helpers/private-nix.ts).
 */
export async function startNixery(
  env: Record<string, string> = {},
  opts: { entry?: string; storagePath?: string; port?: number; wrap?: string[]; compiled?: boolean } = {},
): Promise<NixeryInstance> {
  const port = opts.port ?? (await freePort());
  const storagePath = opts.storagePath ?? (await mkdtemp(path.join(os.tmpdir(), 'nixery-test-')));
  const logFile = path.join(REPO, 'test-artifacts', `nixery-${port}.log`);
  const log = createWriteStream(logFile);
  // `compiled`: what `npm start` runs, `node dist/single-node.js` after `tsc -b` (the benchmarks measure that; issue 15).
  const argv = opts.compiled
    ? [...(opts.wrap ?? []), process.execPath, path.join(REPO, 'dist/single-node.js')]
    : [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', opts.entry ?? path.join(REPO, 'src/single-node.ts')];
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: REPO,
    env: {
      ...process.env,
      TSX_TSCONFIG_PATH: path.join(REPO, 'test/tsconfig.json'),
      PORT: String(port),
      HOST: '127.0.0.1',
      STORAGE_PATH: storagePath,
      LOG_LEVEL: 'debug',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exited: number | null = null;
  child.on('exit', (code) => {
    exited = code ?? -1;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`nixery exited with ${exited} during start-up; see ${logFile}`);
    // 401: pull authentication is on (issue 12), and /v2/ answers its challenge.
    const ok = await fetch(`${url}/v2/`).then((r) => r.ok || r.status === 401, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`nixery did not start; see ${logFile}`);
    await sleep(100);
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    storagePath,
    logFile,
    child,
    stop: async () => {
      if (exited === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, 15_000);
        await done;
        clearTimeout(t);
      }
      if (!opts.storagePath) await rm(storagePath, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** Reads one counter (sum over labels) from a Prometheus text page. */
export function metricValue(text: string, name: string, labels?: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels) {
      const l = m[2] ?? '';
      if (!Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) continue;
    }
    sum += Number(m[3]);
  }
  return sum;
}

/** Fetches /metrics and reads one value. */
export async function metric(url: string, name: string, labels?: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return metricValue(text, name, labels);
}

export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

/** A line of a Nixery's JSON log (pino): its level, message and time, and whatever fields it carries. */
export type LogLine = { level: number; msg: string; time: number; [k: string]: unknown };

/**
 * The JSON lines of a log file written by a running process: only complete
 * lines (a line still being written is left for the next read), only JSON
 * ones (redis-server's own lines share the file).
 */
export async function readLogLines<T extends LogLine = LogLine>(file: string): Promise<T[]> {
  const text = await readFile(file, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}
