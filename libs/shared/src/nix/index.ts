/**
 * nix: running Nix: the project's Nix settings and invocation, image
 * preparation (evaluate, build, closure graph) and the closure parser, used
 * by the pipeline (as a `Preparation`) and by popularity counting alike, and
 * the Nix store's garbage collection when its disk runs low (`store-gc.ts`).
 * Never imports config, storage, records, jobs or the pipeline.
 */
export { runNix, type NixCommand, type NixRun } from './command';
export { toNixSourceArgs, type PackageSourceArgs, type NixSourceArgs, type InvalidSource } from './source';
export { parsePathInfoJson, storePathsOf, closureOf, closureSize } from './closure';
export {
  prepareImage,
  nixPreparation,
  isTransientNixError,
  trimNixStderr,
  type Preparation,
  type PrepareRequest,
  type PrepareOptions,
  type PrepareResult,
  type PrepareStage,
  type PreparedPackage,
  type NixCommands,
} from './prepare';
export { nixEnvironment, projectNixSettings, nixConfText, type NixInvocation, type NixSettingsInput } from './settings';
export { checkNixBuilds, NixHealthMonitor, type NixHealth } from './self-check';
export {
  systemSupport,
  withExtraPlatforms,
  hostNixSystem,
  selfCheckBuilder,
  DEBIAN_ARM64_ROOT,
  BINFMT_DIR,
  type SystemSupport,
  type PlatformPaths,
} from './platforms';
export {
  startStoreCollector,
  checkStoreSpace,
  collectStoreGarbage,
  freeBytesUnder,
  parseGcSummary,
  NIX_STORE_DIR,
  type StoreCollector,
  type StoreGcOptions,
  type StoreGcOutcome,
  type StoreGcFailureReason,
} from './store-gc';
