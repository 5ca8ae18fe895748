import { type Config, type Logger, type NixInvocation, type NixSystem, systemSupport, withExtraPlatforms } from '@nixery/shared';

/** The systems a worker takes jobs for and the Nix invocation that can build them all (issue 13). */
export interface WorkerSystems {
  systems: NixSystem[];
  nix: NixInvocation;
}

/**
 * Systems from NIXERY_PLATFORMS are kept when this machine can build them
 * (natively, or through qemu user emulation) and dropped with a log line
 * otherwise, so `npm start` with several platforms builds what it can.
 * Systems named in NIXERY_WORKER_SYSTEMS are all kept: the self-check then
 * refuses one the machine cannot build, and its jobs answer 503 naming why.
 * Emulated systems go into Nix's `extra-platforms`.
 */
export function workerSystems(config: Config, log: Logger): WorkerSystems {
  const systems: NixSystem[] = [];
  const emulated: NixSystem[] = [];
  for (const system of config.workerSystems) {
    const support = systemSupport(system);
    if (support.ok && support.emulated) emulated.push(system);
    if (support.ok || config.workerSystemsFrom === 'NIXERY_WORKER_SYSTEMS') systems.push(system);
    else log.warn({ system, reason: support.reason }, `this machine cannot build ${system}; its images are not built here: ${support.reason}`);
  }
  if (emulated.length) log.info({ systems: emulated }, 'building through qemu user emulation (Nix extra-platforms)');
  return { systems, nix: withExtraPlatforms(config.nix, emulated) };
}
