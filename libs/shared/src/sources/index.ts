/**
 * sources: pinning the package source to an immutable identity per request:
 * git refs, channel revisions, local-tree fingerprints, refresh with fallback.
 * Never imports config (it defines its own `PackageSourceConfig`), records, jobs or the pipeline.
 */
export * from './channel';
export * from './fingerprint';
export * from './git';
export * from './refresh';
export * from './resolver';
