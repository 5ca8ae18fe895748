export { POPCOUNT_SCHEDULER_ID, type PopcountJobData, type PopcountScheduler, repeatOptions, startPopcountScheduler } from './scheduler';
export { GC_SCHEDULER_ID, type GcJobData, type GcScheduler, startGcScheduler } from './gc-scheduler';
