/**
 * protocol: the registry's own language: the error code table and
 * `RegistryError`, image-name rules (`ImageSpec`, Nix systems), and image
 * documents (config, manifest, the published image).
 * Never imports anything but core; does no I/O.
 */
export * from './errors';
export * from './image-documents';
export * from './image-spec';
export * from './referrers';
