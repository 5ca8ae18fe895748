/**
 * A real Nixery cluster on loopback, for tests: one redis-server (TCP, own
 * directory), the GCS emulator, any number of gateways (apps/gateway/src/main.ts)
 * behind nginx (round robin, passive health checks, the proxy settings of
 * deploy/nginx/nixery-proxy.conf), and any number of workers
 * (apps/worker/src/main.ts). Every app is its own process started exactly as
 * an operator would (REDIS_URL, NIXERY_STORAGE_BACKEND=gcs, GCS_BUCKET,
 * STORAGE_EMULATOR_HOST), in its own process group with its own log file.
 *
 * Workers share this machine's /nix/store, but not their layers: every layer
 * reaches the other processes only through the bucket and the Redis layer
 * cache, as on separate machines.
 */
import { createHash } from 'node:crypto';
import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { type FakeServiceAccount, type GcsEmulator, startGcsEmulator, writeFakeServiceAccount } from './gcs-emulator';
import { REPO } from './nixery';
import { type LongProcess, freePort, logTail, makeScratchDir, removeScratchDir, run, sleep, startProcess, waitFor } from './proc';

export const NGINX_PROXY_CONF = path.join(REPO, 'deploy/nginx/nixery-proxy.conf');

/** One app process of the cluster. */
export interface AppProcess {
  /** e.g. "gateway-1", "worker-2". */
  readonly name: string;
  readonly kind: 'gateway' | 'worker';
  /** The app's own HTTP address: a gateway's registry (not through the load balancer), a worker's /metrics server. */
  readonly url: string;
  readonly port: number;
  readonly logFile: string;
  readonly proc: LongProcess;
  /** Parsed JSON log lines written so far. */
  logLines(): Promise<LogLine[]>;
  /** SIGKILLs the process and every process below it (its Nix children too), like a machine dying. */
  kill(): Promise<void>;
  /** Sends SIGTERM to the app itself and resolves with its exit once it is gone. */
  terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A pino JSON log line. */
export type LogLine = { msg?: string; [k: string]: unknown };

/** What `startCluster` accepts. */
export interface ClusterOptions {
  gateways?: number;
  workers?: number;
  /** Environment for every app (added after the cluster's own settings). */
  env?: Record<string, string>;
  /** Per-kind environment. */
  gatewayEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
}

/** A running cluster. */
export interface Cluster {
  readonly dir: string;
  readonly redisUrl: string;
  readonly bucket: string;
  readonly emulator: GcsEmulator;
  /** The load balancer: `http://127.0.0.1:PORT` and `127.0.0.1:PORT` for registry clients. */
  readonly lb: { url: string; host: string; port: number; accessLog: string };
  readonly gateways: AppProcess[];
  readonly workers: AppProcess[];
  /** Starts one more gateway (not behind the load balancer). */
  startGateway(env?: Record<string, string>): Promise<AppProcess>;
  /** Starts one more worker and waits until it listens on the queues of its systems. */
  startWorker(env?: Record<string, string>): Promise<AppProcess>;
  /** Live workers listening on `build-<system>` (as BullMQ counts them). */
  workerCount(system?: string): Promise<number>;
  /** A cluster-wide counter from Redis (nixery:stats). */
  clusterStat(name: string): Promise<number>;
  /** Every object in the bucket under a prefix (name, size). */
  listObjects(prefix?: string): Promise<{ name: string; size: number }[]>;
  /** An object's bytes. */
  readObject(name: string): Promise<Buffer>;
  /** Stops everything and removes the temporary directory. */
  stop(): Promise<void>;
}

/** Environment every app process gets on top of the test process's own. */
function appEnvBase(): Record<string, string> {
  return {
    TSX_TSCONFIG_PATH: path.join(REPO, 'test/tsconfig.json'),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    LOG_FORMAT: 'json',
    METADATA_SERVER_DETECTION: 'none',
    // nginx on 127.0.0.1 in front of the gateways: its X-Forwarded-* count (issue 12).
    NIXERY_TRUSTED_PROXIES: '127.0.0.1',
  };
}

/** True when a redis-server answers PING on `port`. */
function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('PING\r\n'));
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
    s.on('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.on('error', () => resolve(false));
  });
}

/** The pids of every descendant of `pid` (from /proc), deepest last. */
async function descendants(pid: number): Promise<number[]> {
  const r = await run('ps', ['-e', '-o', 'pid=,ppid=']);
  const children = new Map<number, number[]>();
  for (const line of r.stdout.split('\n')) {
    const [c, p] = line.trim().split(/\s+/).map(Number);
    if (!c || p === undefined) continue;
    children.set(p, [...(children.get(p) ?? []), c]);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Reads a JSON-lines log file, skipping lines that are not JSON. */
async function readLogLines(file: string): Promise<LogLine[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      /* partial line */
    }
  }
  return out;
}

/** nginx configuration for `gateways` (ports) listening on `port`, everything under `dir`. */
export function nginxConfig(dir: string, port: number, gateways: number[]): string {
  const servers = gateways.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=30s;`).join('\n');
  return `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 1024; }
http {
  log_format upstreams '$request_method $uri $status upstream=$upstream_addr upstream_status=$upstream_status';
  access_log ${dir}/access.log upstreams;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  upstream nixery_gateways {
${servers}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      include ${NGINX_PROXY_CONF};
    }
  }
}
`;
}

/**
 * Starts Redis, the GCS emulator, `gateways` gateways behind nginx and
 * `workers` workers. Package source: a copy of the bundled set in the
 * cluster's directory (`pkgsDir`), so a test may change `slow-seconds` there.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster & { pkgsDir: string }> {
  const dir = await makeScratchDir('nixery-cluster-');
  const stoppers: (() => Promise<void>)[] = [];
  const apps: AppProcess[] = [];
  const gateways: AppProcess[] = [];
  const workers: AppProcess[] = [];
  const logDir = path.join(REPO, 'test-artifacts');
  await mkdir(logDir, { recursive: true });
  const tag = path.basename(dir).replace('nixery-cluster-', '');
  const bucket = `nixery-cluster-${tag.toLowerCase()}`;
  let sa: FakeServiceAccount | undefined;
  let emulator: GcsEmulator | undefined;
  let redis: Redis | undefined;
  const queues = new Map<string, Queue>();
  const conns: Redis[] = [];

  const stop = async () => {
    for (const q of queues.values()) await q.close().catch(() => undefined);
    for (const conn of conns) await conn.quit().catch(() => conn.disconnect());
    await redis?.quit().catch(() => redis?.disconnect());
    await Promise.all(apps.map((a) => a.proc.stop()));
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
    await emulator?.stop();
    await sa?.cleanup();
    await removeScratchDir(dir);
  };

  try {
    // Package set: a private copy of the bundled one.
    const pkgsDir = path.join(dir, 'pkgs');
    await cp(path.join(REPO, 'nix/pkgs'), pkgsDir, { recursive: true });

    // Redis on TCP.
    const redisPort = await freePort();
    const redisDir = path.join(dir, 'redis');
    await mkdir(redisDir);
    const redisProc = await startProcess({
      name: 'redis-server',
      cmd: 'redis-server',
      args: ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--save', '', '--appendonly', 'no'],
      logFile: path.join(logDir, `cluster-${tag}-redis.log`),
      ready: () => redisPing(redisPort),
      stopGraceMs: 5000,
    });
    stoppers.push(() => redisProc.stop());
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    redis = new Redis(redisUrl, { maxRetriesPerRequest: null });

    [emulator, sa] = await Promise.all([startGcsEmulator(), writeFakeServiceAccount()]);

    const common: Record<string, string> = {
      ...appEnvBase(),
      REDIS_URL: redisUrl,
      NIXERY_STORAGE_BACKEND: 'gcs',
      GCS_BUCKET: bucket,
      GOOGLE_APPLICATION_CREDENTIALS: sa.keyFilename,
      STORAGE_EMULATOR_HOST: emulator.host,
      NIXERY_PKGS_PATH: pkgsDir,
      // A copied package set is not "the bundled set": say explicitly that there is no binary cache.
      NIXERY_NIX_OPTIONS: '--option substitute false',
      ...opts.env,
    };

    const counter = { gateway: 0, worker: 0 };
    const startApp = async (kind: 'gateway' | 'worker', env: Record<string, string>): Promise<AppProcess> => {
      const n = ++counter[kind];
      const name = `${kind}-${n}`;
      const logFile = path.join(logDir, `cluster-${tag}-${name}.log`);
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const entry = path.join(REPO, `apps/${kind}/src/main.ts`);
      const startedLines = async () => (await readLogLines(logFile)).some((l) => l.msg === 'build worker started');
      const proc = await startProcess({
        name,
        cmd: process.execPath,
        args: ['--import', 'tsx', entry],
        cwd: REPO,
        logFile,
        env: {
          ...common,
          ...(kind === 'gateway' ? opts.gatewayEnv : opts.workerEnv),
          ...env,
          ...(kind === 'gateway' ? { PORT: String(port) } : { NIXERY_WORKER_METRICS_PORT: String(port) }),
        },
        ready: kind === 'gateway' ? () => fetch(`${url}/v2/`).then((r) => r.ok, () => false) : startedLines,
        readyTimeoutMs: 90_000,
        stopGraceMs: 20_000,
      });
      const app: AppProcess = {
        name,
        kind,
        url,
        port,
        logFile,
        proc,
        logLines: () => readLogLines(logFile),
        kill: async () => {
          const below = await descendants(proc.pid);
          for (const pid of [proc.pid, ...below]) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone */
            }
          }
          await proc.exited;
        },
        terminate: async () => {
          process.kill(proc.pid, 'SIGTERM');
          return proc.exited;
        },
      };
      apps.push(app);
      return app;
    };

    const workerCount = async (system = 'x86_64-linux') => {
      let q = queues.get(system);
      if (!q) {
        const conn = redis!.duplicate();
        conns.push(conn);
        q = new Queue(`build-${system}`, { connection: conn, prefix: 'nixery' });
        queues.set(system, q);
      }
      return q.getWorkersCount();
    };

    const startWorker = async (env: Record<string, string> = {}) => {
      const systems = (env.NIXERY_WORKER_SYSTEMS ?? opts.workerEnv?.NIXERY_WORKER_SYSTEMS ?? 'x86_64-linux').split(',');
      const before = await Promise.all(systems.map((s) => workerCount(s)));
      const w = await startApp('worker', env);
      const ok = await waitFor(async () => (await Promise.all(systems.map((s) => workerCount(s)))).every((c, i) => c > before[i]!), {
        timeoutMs: 30_000,
      });
      if (!ok) throw new Error(`${w.name} did not connect to its queues; log:\n${await logTail(w.logFile)}`);
      workers.push(w);
      return w;
    };
    const startGateway = (env: Record<string, string> = {}) => startApp('gateway', env);

    const gw = await Promise.all(Array.from({ length: opts.gateways ?? 2 }, () => startGateway()));
    gateways.push(...gw);
    for (let i = 0; i < (opts.workers ?? 2); i++) await startWorker();

    // The load balancer.
    const lbDir = path.join(dir, 'nginx');
    await mkdir(path.join(lbDir, 'tmp'), { recursive: true });
    await chmod(path.join(lbDir, 'tmp'), 0o777);
    const lbPort = await freePort();
    const conf = path.join(lbDir, 'nginx.conf');
    await writeFile(conf, nginxConfig(lbDir, lbPort, gw.map((g) => g.port!)));
    const lbUrl = `http://127.0.0.1:${lbPort}`;
    const nginx = await startProcess({
      name: 'nginx',
      cmd: '/usr/sbin/nginx',
      args: ['-p', `${lbDir}/`, '-e', `${lbDir}/error.log`, '-c', conf, '-g', 'daemon off;'],
      logFile: path.join(logDir, `cluster-${tag}-nginx.log`),
      ready: () => fetch(`${lbUrl}/v2/`).then((r) => r.ok, () => false),
      stopGraceMs: 5000,
    });
    stoppers.push(() => nginx.stop());

    const r = redis;
    return {
      dir,
      pkgsDir,
      redisUrl,
      bucket,
      emulator,
      lb: { url: lbUrl, host: `127.0.0.1:${lbPort}`, port: lbPort, accessLog: path.join(lbDir, 'access.log') },
      gateways,
      workers,
      startGateway,
      startWorker,
      workerCount,
      clusterStat: async (name) => Number((await r.hget('nixery:stats', name)) ?? 0),
      listObjects: (prefix = '') => listObjects(emulator!.host, bucket, prefix),
      readObject: (name) => readObject(emulator!.host, bucket, name),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Lists a bucket through the emulator's JSON API (every page). */
async function listObjects(host: string, bucket: string, prefix: string): Promise<{ name: string; size: number }[]> {
  const out: { name: string; size: number }[] = [];
  let pageToken: string | undefined;
  do {
    const u = new URL(`${host}/storage/v1/b/${encodeURIComponent(bucket)}/o`);
    if (prefix) u.searchParams.set('prefix', prefix);
    if (pageToken) u.searchParams.set('pageToken', pageToken);
    const res = await fetch(u);
    if (res.status === 404) return out;
    if (!res.ok) throw new Error(`list ${bucket}: HTTP ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { items?: { name: string; size: string }[]; nextPageToken?: string };
    for (const i of body.items ?? []) out.push({ name: i.name, size: Number(i.size) });
    pageToken = body.nextPageToken;
  } while (pageToken);
  return out;
}

/** Downloads one object through the emulator's JSON API. */
async function readObject(host: string, bucket: string, name: string): Promise<Buffer> {
  const res = await fetch(`${host}/storage/v1/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(name)}?alt=media`);
  if (!res.ok) throw new Error(`read ${name}: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** sha256 hex of a buffer. */
export function sha256Hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * Watches a bucket while a test runs: every object that appears under
 * `layers/` or `manifests/` is downloaded and its sha256 compared with its
 * name. Collects every mismatch (a partial or wrong object served under a
 * digest) until stopped.
 */
export function watchDigestObjects(cluster: Pick<Cluster, 'listObjects' | 'readObject'>, intervalMs = 300) {
  const checked = new Map<string, number>();
  const bad: string[] = [];
  let running = true;
  const checkAll = async () => {
    const objs = (await cluster.listObjects()).filter((o) => /^(layers|manifests)\/[0-9a-f]{64}$/.test(o.name));
    for (const o of objs) {
      if (checked.get(o.name) === o.size) continue;
      const bytes = await cluster.readObject(o.name).catch(() => null);
      if (!bytes) continue; // deleted meanwhile
      checked.set(o.name, o.size);
      const hex = o.name.split('/')[1]!;
      if (sha256Hex(bytes) !== hex) bad.push(`${o.name} (${bytes.length} bytes hash to ${sha256Hex(bytes)})`);
    }
  };
  const loop = (async () => {
    while (running) {
      await checkAll().catch(() => undefined);
      await sleep(intervalMs);
    }
  })();
  let final: Promise<{ bad: string[]; checked: number }> | undefined;
  return {
    /** Stops watching, does one last full check, and returns the mismatches and how many objects were checked. Idempotent. */
    stop(): Promise<{ bad: string[]; checked: number }> {
      running = false;
      final ??= loop.then(checkAll).then(() => ({ bad, checked: checked.size }));
      return final;
    },
  };
}
