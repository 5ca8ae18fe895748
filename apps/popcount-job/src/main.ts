import { runProcess } from '@nixery/shared';
import { startPopcountScheduler } from './scheduler';

runProcess('popcount-job', async (rt) => startPopcountScheduler(rt));
