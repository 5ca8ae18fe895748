/**
 * storage: the blob store behind one small interface: filesystem, GCS and
 * S3 drivers, staged writes (hash while writing, move to the digest key), key
 * names, and `createStorage` from the storage room's own settings.
 * Never imports config, Koa, BullMQ or Redis (only core).
 */
export * from './checked';
export * from './create';
export * from './driver';
export * from './filesystem';
export * from './gcs';
export * from './keys';
export * from './read-all';
export * from './s3';
export * from './staged';
export * from './sweep';
