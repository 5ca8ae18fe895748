/**
 * config: the one validated configuration object, read from the environment
 * once, built from the rooms' own option types.
 * Never imports runtime, records, jobs or the pipeline, and nothing that does I/O.
 */
export * from './config';
export * from './auth';
