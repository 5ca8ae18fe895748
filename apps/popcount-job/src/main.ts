import { runProcess } from '@nixery/shared';
import { startPopcountScheduler } from './index';

runProcess('popcount-job', async (rt) => startPopcountScheduler(rt));
