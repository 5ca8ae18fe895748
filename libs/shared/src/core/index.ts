/**
 * core: the small, pure vocabulary every room shares: branded digests, media
 * types, closure-graph types and store-path names, failures as data,
 * `mapLimit`, `withTimeout`, `BoundedMemo`, byte and hash counters, byte sizes (`parseByteSize`).
 * Never imports another room, a package, or anything that does I/O.
 */
export * from './byte-size';
export * from './counters';
export * from './digest';
export * from './failure';
export * from './graph';
export * from './map-limit';
export * from './memo';
export * from './media-types';
export * from './store-path';
export * from './timeout';
