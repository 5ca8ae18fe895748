/** Redis for tests: a redis-server of a test's own on a loopback TCP port, and whether it answers yet. */
import path from 'node:path';
import { Redis } from 'ioredis';
import { REPO } from './nixery';
import { type LongProcess, startProcess } from './proc';

/** True when a redis-server on 127.0.0.1:`port` answers PING (one try, no retries, no error events left behind). */
export async function redisAnswersOn(port: number): Promise<boolean> {
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  return probe
    .connect()
    .then(() => probe.ping())
    .then((p) => p === 'PONG', () => false)
    .finally(() => probe.disconnect());
}

/**
 * Starts a redis-server of a test's own on 127.0.0.1:`port` with its data in
 * `dir` (no snapshots; the append-only file when `appendonly`), logging to
 * test-artifacts/`logName`-PORT.log; ready once it answers PING.
 */
export function startRedisServer(port: number, dir: string, opts: { logName: string; appendonly?: boolean }): Promise<LongProcess> {
  return startProcess({
    name: 'redis-server',
    cmd: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no'],
    logFile: path.join(REPO, 'test-artifacts', `${opts.logName}-${port}.log`),
    ready: () => redisAnswersOn(port),
    stopGraceMs: 5000,
  });
}
