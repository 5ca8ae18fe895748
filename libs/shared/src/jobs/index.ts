/**
 * jobs: the build queue's contract: queue names, job data, result and
 * progress types, the build key, the failure codec, and read-only status of
 * the queues (BullMQ) for pages and gauges.
 * Never imports config, storage, records or the pipeline.
 */
export * from './build-key';
export * from './failure-codec';
export * from './queue-status';
export * from './types';
