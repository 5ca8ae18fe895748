/**
 * pipeline: building an image (Nix preparation taken as a dependency,
 * layering, packing missing layers under the layer cache's locks) and
 * publishing it (storage, then status, then cache); composing and
 * publishing a multi-platform image's index (issue 13).
 * Never imports BullMQ, Koa or config: the worker hands it everything.
 */
export * from './build-image';
export * from './compose-index';
export * from './layer-cache';
export * from './layers';
export * from './publish';
export * from './sbom';
