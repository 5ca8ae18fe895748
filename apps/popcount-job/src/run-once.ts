/**
 * `npm run popcount`: computes the popularity table for the configured package
 * source once, publishes it to Redis and exits (0 on success, 1 on failure,
 * 2 on bad configuration). Without REDIS_URL it uses the embedded Redis of
 * `npm start` under STORAGE_PATH (the running one, or starts it for the run).
 */
import { PopcountError, runOnce, runPopcount } from '@nixery/shared';

runOnce(
  'popcount',
  async (rt, config) => {
    try {
      const { meta } = await runPopcount({
        config,
        redis: rt.redis,
        log: rt.log,
        jobId: 'cli',
        onProgress: (p) => rt.log.debug({ progress: p }, 'popcount progress'),
      });
      process.stdout.write(`${JSON.stringify(meta)}\n`);
      return 0;
    } catch (err) {
      console.error(`popcount failed: ${err instanceof PopcountError ? `${err.code}: ${err.message}` : String(err)}`);
      return 1;
    }
  },
  { redis: 'embedded' },
);
