/** The popularity job's pieces: counting (channel narinfo method, Nix for local sets), publishing, scheduling config. */
export * from './channel';
export * from './counts';
export * from './errors';
export * from './keys';
export * from './local';
export * from './narinfo';
export * from './publish';
export * from './run';
export * from './schedule';
export * from './types';
