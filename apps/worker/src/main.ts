import { runProcess } from '@nixery/shared';
import { startBuildWorker } from './worker';

runProcess('worker', async (rt) => startBuildWorker(rt));
