export { POPCOUNT_SCHEDULER_ID, type PopcountJobData, type PopcountScheduler, repeatOptions, startPopcountScheduler } from './scheduler';
