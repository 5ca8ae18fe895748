/**
 * nix: running Nix: the project's Nix settings and invocation, image
 * preparation (evaluate, build, closure graph) and the closure parser, used
 * by the pipeline (as a `Preparation`) and by popularity counting alike.
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
