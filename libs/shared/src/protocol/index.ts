/**
 * protocol: the registry's own language: the error code table and
 * `RegistryError`, image-name rules (`ImageSpec`, Nix systems), and image
 * documents (config, both manifests, indexes, the published image),
 * manifest negotiation (`Accept`) and platforms (NIXERY_PLATFORMS).
 * Never imports anything but core; does no I/O.
 */
export * from './errors';
export * from './image-documents';
export * from './image-spec';
export * from './negotiation';
export * from './platforms';
export * from './referrers';
