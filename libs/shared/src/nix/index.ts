/** Running Nix: a safe child-process runner and image preparation (evaluate, build, closure graph). */
export { runCommand, type RunOptions, type RunResult } from './run';
export { toNixSourceArgs, type PackageSourceArgs, type NixSourceArgs, type InvalidSource } from './source';
export { parsePathInfoJson, storePathsOf, closureOf, closureSize, isStorePath } from './closure';
export {
  prepareImage,
  isTransientNixError,
  trimNixStderr,
  type PrepareOptions,
  type PrepareResult,
  type PrepareStage,
  type PreparedPackage,
  type NixCommands,
} from './prepare';
export { nixEnvironment, projectNixSettings, nixConfText, type NixInvocation, type NixSettingsInput } from './settings';
export { checkNixBuilds, NixHealthMonitor, type NixHealth } from './self-check';
