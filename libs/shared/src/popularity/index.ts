/**
 * popularity: how often each store path is referenced, from counting to
 * reading: the popularity job's counting (channel narinfo method, Nix for
 * git and local sets), atomic publishing, schedule settings, and the
 * `PopularityReader` the pipeline's layering is fed from.
 * Never imports config (its settings are its own types), the pipeline, records or jobs.
 */
export * from './channel';
export * from './counts';
export * from './errors';
export * from './keys';
export * from './local';
export * from './narinfo';
export * from './publish';
export * from './reader';
export * from './run';
export * from './schedule';
export * from './types';
