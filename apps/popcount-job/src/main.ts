import { runProcess } from '@nixery/shared';
import { startGcScheduler } from './gc-scheduler';
import { startPopcountScheduler } from './scheduler';

// The cluster's scheduled jobs: popularity counting and storage collection (issue 11).
runProcess('popcount-job', async (rt) => {
  const popcount = await startPopcountScheduler(rt);
  const gc = await startGcScheduler(rt);
  return {
    close: async () => {
      await gc.close();
      await popcount.close();
    },
  };
});
