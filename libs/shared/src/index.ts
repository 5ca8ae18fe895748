/** @nixery/shared: every room's public names, for the apps. Rooms import each other directly, never through this file. */
export type { Redis } from 'ioredis';
export * from './collect';
export * from './config';
export * from './core';
export * from './infra';
export * from './jobs';
export * from './layering';
export * from './nix';
export * from './pipeline';
export * from './popularity';
export * from './protocol';
export * from './records';
export * from './runtime';
export * from './sbom';
export * from './sources';
export * from './storage';
export * from './tarball';
