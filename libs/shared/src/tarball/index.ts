/**
 * tarball: reproducible layer tarballs: store-path and symlink-layer walkers,
 * the tar writer, gzip as parallel members at fixed offsets, with diff_id hashing.
 * Never imports storage (it makes streams; whoever stores them is elsewhere), config or Redis.
 */
export * from './compress';
export * from './entry';
export * from './pack';
