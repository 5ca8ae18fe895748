/**
 * Starts a private Docker engine for end-to-end tests.
 *
 * Each instance lives entirely in its own scratch directory (data root, exec
 * root, pidfile, unix socket, CLI config), touches no host networking
 * (no iptables, no bridge) and uses the vfs storage driver, so several can run
 * next to each other and next to a host dockerd. `stop()` shuts it down and
 * deletes the directory (vfs copies every layer, so it can be large).
 *
 * Flags used (Debian docker.io 20.10 on bookworm):
 *   dockerd --config-file D/daemon.json --data-root D/data --exec-root D/exec
 *     --pidfile D/docker.pid -H unix://D/docker.sock --storage-driver vfs
 *     --exec-opt native.cgroupdriver=cgroupfs --iptables=false --ip6tables=false
 *     --bridge=none --ip-masq=false --userland-proxy=false
 * Containers must then run with `--network none` (there is no bridge).
 * Registries on 127.0.0.0/8 are plain-HTTP ("insecure") by default.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import {
  makeScratchDir,
  removeScratchDir,
  run,
  startProcess,
  waitForPidExit,
  type RunOptions,
  type RunResult,
} from './proc';

/** Options for `startDockerd`. All optional. */
export interface DockerdOptions {
  /** dockerd executable. Default `dockerd` (Debian: /usr/sbin/dockerd). */
  dockerdBin?: string;
  /**
   * docker CLI executable. Default `/usr/bin/docker` (Debian's docker.io,
   * same version as the daemon) when present, else `docker` from PATH.
   */
  dockerCli?: string;
  /** Extra registries to treat as plain HTTP (127.0.0.0/8 already is). */
  insecureRegistries?: string[];
  /** Extra dockerd arguments, appended last. */
  extraArgs?: string[];
  /** How long to wait for the API to answer `/_ping`. Default 60 000 ms. */
  readyTimeoutMs?: number;
}

/** Options for one docker CLI call. */
export type DockerRunOptions = Pick<RunOptions, 'timeoutMs' | 'input' | 'cwd'>;

/** A running private Docker engine. */
export interface Dockerd {
  /** `unix:///.../docker.sock`, the value for DOCKER_HOST. */
  readonly host: string;
  /** The scratch directory holding everything of this engine. */
  readonly dir: string;
  /** dockerd's log file. */
  readonly logFile: string;
  /** Runs the docker CLI against this engine (DOCKER_HOST and DOCKER_CONFIG set). */
  docker(args: string[], opts?: DockerRunOptions): Promise<RunResult>;
  /** Stops the engine (and its containerd) and deletes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** True when the Docker API on `socketPath` answers GET /_ping with 200. */
export function pingDocker(socketPath: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 2_000 }, (res) => {
      res.resume();
      resolvePromise(res.statusCode === 200);
    });
    req.on('error', () => resolvePromise(false));
    req.on('timeout', () => {
      req.destroy();
      resolvePromise(false);
    });
    req.end();
  });
}

async function readPid(file: string): Promise<number | null> {
  try {
    const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** Starts a private dockerd in a fresh scratch directory and waits until its API answers. */
export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  const dir = await makeScratchDir('nixery-dockerd-');
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const logFile = join(dir, 'dockerd.log');
  const cliConfig = join(dir, 'cli');
  const daemonJson = join(dir, 'daemon.json');
  const execRoot = join(dir, 'exec');
  await mkdir(cliConfig);
  // An explicit, empty daemon config so /etc/docker/daemon.json cannot interfere.
  await writeFile(daemonJson, '{}\n');
  await writeFile(join(cliConfig, 'config.json'), '{}\n');

  const args = [
    '--config-file', daemonJson,
    '--data-root', join(dir, 'data'),
    '--exec-root', execRoot,
    '--pidfile', join(dir, 'docker.pid'),
    '-H', host,
    '--storage-driver', 'vfs',
    '--exec-opt', 'native.cgroupdriver=cgroupfs',
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    '--ip-masq=false',
    '--userland-proxy=false',
    ...(opts.insecureRegistries ?? []).flatMap((r) => ['--insecure-registry', r]),
    ...(opts.extraArgs ?? []),
  ];

  const dockerCli = opts.dockerCli ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
  const containerdPidFile = join(execRoot, 'containerd', 'containerd.pid');

  let proc;
  try {
    proc = await startProcess({
      name: 'dockerd',
      cmd: opts.dockerdBin ?? 'dockerd',
      args,
      logFile,
      ready: () => pingDocker(socket),
      readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
      stopGraceMs: 20_000,
    });
  } catch (e) {
    const ctd = await readPid(containerdPidFile);
    if (ctd !== null) await waitForPidExit(ctd, 5_000);
    await removeScratchDir(dir);
    throw e;
  }
  const started = proc;

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    // dockerd runs its own containerd in a separate session; note its pid so a
    // SIGKILLed dockerd cannot leave it behind.
    const ctd = await readPid(containerdPidFile);
    await started.stop();
    if (ctd !== null) await waitForPidExit(ctd, 10_000);
    await removeScratchDir(dir);
  };

  return {
    host,
    dir,
    logFile,
    docker: (dockerArgs, runOpts = {}) =>
      run(dockerCli, dockerArgs, {
        ...runOpts,
        env: { DOCKER_HOST: host, DOCKER_CONFIG: cliConfig },
      }),
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}
