import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { Config } from '../config/config';
import type { RedisTarget } from '../infra/redis';
import { RedisSupervisor, type ServerProcess, type SupervisedState, type SupervisorEvent, type SupervisorOptions } from './redis-supervisor';

/** A redis-server started by this process, restarted when it exits unasked (see {@link RedisSupervisor}). */
export interface EmbeddedRedis {
  /** Unix socket path to connect to (the same for every restart). */
  socket: string;
  /** The pid of the redis-server running now. */
  readonly pid: number;
  /** `running`, `restarting`, or `failed` (several starts in a row failed; it keeps trying). */
  state(): SupervisedState;
  /** Failed starts in a row so far. */
  readonly failuresInARow: number;
  /** Calls `listener` on every exit, restart and failed restart. */
  onEvent(listener: (e: SupervisorEvent) => void): void;
  /** Stops supervising and stops the server (SIGTERM, SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** The manifest of Redis's append-only files under its `--dir` (default `appenddirname` and `appendfilename`); written once the first file is complete. */
const AOF_MANIFEST = path.join('appendonlydir', 'appendonly.aof.manifest');

/**
 * The embedded redis-server's command line: a unix socket only, data under
 * `dir`. Persistence that a failed snapshot does not stop: the append-only
 * file, and writes go on when a background save fails (no MISCONF for the
 * queue; the failure is in Redis's log). Memory never evicts (queue keys
 * must not vanish): a full memory refuses writes with `OOM` instead.
 * `aof` false (a data directory of snapshots only, from before the
 * append-only file) starts without it, so the snapshot is loaded; the
 * caller then turns it on (CONFIG SET appendonly yes writes the file from
 * the loaded data). Starting with it would load an empty data set.
 */
export function embeddedRedisArgs(dir: string, socket: string, aof = true): string[] {
  return [
    ...['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir],
    ...['--save', '60 1', '--appendonly', aof ? 'yes' : 'no', '--stop-writes-on-bgsave-error', 'no', '--maxmemory-policy', 'noeviction'],
    ...['--loglevel', 'warning'],
  ];
}

/** Options of {@link startEmbeddedRedis}. */
export interface EmbeddedRedisOptions extends SupervisorOptions {
  /** The redis-server program (default `redis-server` on the PATH). */
  binary?: string;
}

/**
 * Starts a private redis-server on a unix socket under `dir` (no TCP port, so
 * several instances run side by side), with its data in `dir` too, in its
 * own process group, and keeps it running: when it exits without `stop()`
 * (killed, crashed), another is started on the same socket and data
 * directory, whose append-only file brings back the queues, caches and
 * popularity (writes of the last second may be lost). It is stopped by
 * `stop()` or when this process exits (one left by a killed process is
 * reused by the next start, see {@link redisForConfig}).
 */
export async function startEmbeddedRedis(dir: string, opts: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  await mkdir(dir, { recursive: true });
  const socket = path.join(dir, 'redis.sock');
  const binary = opts.binary ?? 'redis-server';
  const supervisor = new RedisSupervisor(await launchRedis(dir, socket, binary), () => launchRedis(dir, socket, binary), opts);
  const killOnExit = () => supervisor.stopSupervising().kill('SIGTERM');
  process.on('exit', killOnExit);
  return {
    socket,
    get pid() {
      return supervisor.pid;
    },
    state: () => supervisor.state(),
    get failuresInARow() {
      return supervisor.failuresInARow;
    },
    onEvent: (listener) => supervisor.onEvent(listener),
    stop: async () => {
      process.off('exit', killOnExit);
      const server = supervisor.stopSupervising();
      server.kill('SIGTERM');
      await Promise.race([server.exit, sleep(5000, undefined, { ref: false }).then(() => server.kill('SIGKILL'))]);
    },
  };
}

/**
 * Starts one redis-server on `socket` (a stale socket file is removed first)
 * and waits until it answers PING, at most 10 s; from a data directory of
 * snapshots only it turns the append-only file on first. Rejects (the
 * server killed) when it exits or does not answer in time.
 */
async function launchRedis(dir: string, socket: string, binary: string): Promise<ServerProcess> {
  await rm(socket, { force: true });
  const aof = existsSync(path.join(dir, AOF_MANIFEST)) || !existsSync(path.join(dir, 'dump.rdb'));
  const child: ChildProcess = spawn(
    binary,
    embeddedRedisArgs(dir, socket, aof),
    // Its own process group: a signal to ours (Ctrl-C, a supervisor's group SIGTERM) must not stop
    // Redis under our graceful shutdown, which still needs it; stop() ends it last.
    { stdio: ['ignore', 'inherit', 'inherit'], detached: true },
  );
  let exited = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    });
    child.once('error', () => {
      exited = true;
      resolve({ code: null, signal: null });
    });
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`${binary} exited during start-up`);
    if (existsSync(socket)) {
      const probe = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.ping();
        if (!aof) await turnOnAppendOnly(probe, dir, deadline);
        probe.disconnect();
        break;
      } catch {
        probe.disconnect();
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${binary} did not start within 10 s`);
    }
    await sleep(50);
  }
  return { pid: child.pid ?? -1, exit, kill: (signal) => void (exited || child.kill(signal)) };
}

/**
 * Turns on the append-only file of a server started without it and waits
 * until its first file is written (Redis will not shut down before, and a
 * start without it would find no data).
 */
async function turnOnAppendOnly(redis: Redis, dir: string, deadline: number): Promise<void> {
  await redis.config('SET', 'appendonly', 'yes');
  for (;;) {
    const info = await redis.info('persistence');
    if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info) && existsSync(path.join(dir, AOF_MANIFEST))) return;
    if (Date.now() > deadline) throw new Error('redis-server did not write its append-only file within 10 s');
    await sleep(50);
  }
}

/** True when a Redis server answers PING on the unix socket `socket`. */
export async function redisResponds(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false;
  const probe = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await probe.connect();
    await probe.ping();
    return true;
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/**
 * Where a process that may run without REDIS_URL finds Redis: REDIS_URL when
 * set; otherwise the embedded redis-server under the storage path (`<STORAGE_PATH>/redis`),
 * reusing one that is already running there or starting it (then `embedded` is set
 * and the caller stops it).
 */
export async function redisForConfig(config: Config): Promise<{ target: RedisTarget; embedded?: EmbeddedRedis }> {
  if (config.redisUrl) return { target: { url: config.redisUrl } };
  const base = config.storage.backend === 'filesystem' ? config.storage.path : path.resolve('data');
  const dir = path.join(base, 'redis');
  const socket = path.join(dir, 'redis.sock');
  if (await redisResponds(socket)) return { target: { path: socket } };
  const embedded = await startEmbeddedRedis(dir);
  return { target: { path: embedded.socket }, embedded };
}
