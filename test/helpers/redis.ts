/** Redis for tests: whether a redis-server this test started on a loopback TCP port answers yet. */
import { Redis } from 'ioredis';

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
