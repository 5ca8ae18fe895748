/**
 * A Docker engine for docker-compose tests, with a data root that survives
 * between runs, so the base image (scripts/base-image.sh) and the images
 * deploy/Dockerfile builds from it are cached like on a developer's machine.
 *
 * - Data root: `<cache>/compose-engine/data-<driver>` (cache:
 *   NIXERY_CACHE_DIR, default ~/.cache/nixery-ts). overlay2 when the kernel
 *   and file system allow it (copying every layer, as vfs does, makes each
 *   container start copy the whole image), else vfs. Exec root, socket and
 *   log live in a scratch directory of this run.
 * - dockerd's log: test-artifacts/compose-dockerd-<driver>.log.
 * - One run at a time per data root: a lock directory holding the owner's
 *   pid. When another live run holds it, this run gets a throw-away data
 *   root (and builds everything from scratch).
 * - No host networking changes: no bridge, no iptables; containers use
 *   `network_mode: host` or `--network none`.
 * - `start` removes whatever an earlier, interrupted run left in the engine
 *   (containers, networks, volumes, images pulled from registries on
 *   127.0.0.0/8); `stop` does the same, then stops dockerd.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pingDocker } from './dockerd';
import { REPO } from './nixery';
import { type LongProcess, type RunOptions, type RunResult, isAlive, makeScratchDir, removeScratchDir, run, startProcess, waitForPidExit } from './proc';

export interface ComposeEngine {
  /** `unix:///.../docker.sock`, the value for DOCKER_HOST. */
  readonly host: string;
  /** The engine's data root (persistent unless another run held the lock). */
  readonly dataRoot: string;
  readonly storageDriver: string;
  /** True when the data root is the persistent, cached one. */
  readonly persistent: boolean;
  readonly logFile: string;
  /** The docker CLI against this engine. */
  docker(args: string[], opts?: Pick<RunOptions, 'timeoutMs' | 'input' | 'env'>): Promise<RunResult>;
  /** Any command with DOCKER_HOST (and a private DOCKER_CONFIG) set to this engine. */
  exec(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Removes every container, network and volume, then stops the engine. Idempotent. */
  stop(): Promise<void>;
}

export function cacheDir(): string {
  return process.env.NIXERY_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'nixery-ts');
}

const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

/** Takes `<dir>/lock` for this process (stale locks of dead processes are taken over). */
async function takeLock(dir: string): Promise<(() => Promise<void>) | null> {
  const lock = path.join(dir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await mkdir(lock);
      await writeFile(path.join(lock, 'pid'), `${process.pid}\n`);
      return () => rm(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number.parseInt(await readFile(path.join(lock, 'pid'), 'utf8').catch(() => ''), 10);
      if (Number.isFinite(owner) && owner > 0 && isAlive(owner)) return null;
      await rm(lock, { recursive: true, force: true });
    }
  }
  return null;
}

async function startDockerdAt(scratch: string, dataRoot: string, driver: string): Promise<{ proc: LongProcess; host: string; logFile: string }> {
  const socket = path.join(scratch, 'docker.sock');
  const logDir = path.join(REPO, 'test-artifacts');
  await mkdir(logDir, { recursive: true });
  const logFile = path.join(logDir, `compose-dockerd-${driver}.log`);
  const daemonJson = path.join(scratch, 'daemon.json');
  await writeFile(daemonJson, '{}\n');
  await mkdir(dataRoot, { recursive: true });
  // A dockerd killed earlier may have left its pidfile; dockerd refuses to start over a live one only.
  const proc = await startProcess({
    name: `dockerd (${driver})`,
    cmd: 'dockerd',
    args: [
      '--config-file', daemonJson,
      '--data-root', dataRoot,
      '--exec-root', path.join(scratch, 'exec'),
      '--pidfile', path.join(scratch, 'docker.pid'),
      '-H', `unix://${socket}`,
      '--storage-driver', driver,
      '--exec-opt', 'native.cgroupdriver=cgroupfs',
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--ip-masq=false',
      '--userland-proxy=false',
    ],
    logFile,
    ready: () => pingDocker(socket),
    readyTimeoutMs: 60_000,
    stopGraceMs: 30_000,
  });
  return { proc, host: `unix://${socket}`, logFile };
}

/** Starts the engine (see the file comment). */
export async function startComposeEngine(): Promise<ComposeEngine> {
  const scratch = await makeScratchDir('nixery-compose-engine-');
  const cliConfig = path.join(scratch, 'cli');
  await mkdir(cliConfig);
  await writeFile(path.join(cliConfig, 'config.json'), '{}\n');
  const base = path.join(cacheDir(), 'compose-engine');
  await mkdir(base, { recursive: true });
  const release = await takeLock(base);
  const persistent = release !== null;

  let started: { proc: LongProcess; host: string; logFile: string } | undefined;
  let driver = '';
  let dataRoot = '';
  const errors: string[] = [];
  for (const d of ['overlay2', 'vfs']) {
    dataRoot = persistent ? path.join(base, `data-${d}`) : path.join(scratch, `data-${d}`);
    try {
      started = await startDockerdAt(scratch, dataRoot, d);
      driver = d;
      break;
    } catch (err) {
      errors.push(String(err));
      // dockerd's own containerd may still be going down.
      const ctd = Number.parseInt(await readFile(path.join(scratch, 'exec/containerd/containerd.pid'), 'utf8').catch(() => ''), 10);
      if (ctd > 0) await waitForPidExit(ctd, 5_000);
    }
  }
  if (!started) {
    await release?.();
    await removeScratchDir(scratch);
    throw new Error(`no Docker engine could start:\n${errors.join('\n')}`);
  }
  const { proc, host, logFile } = started;
  const env = { DOCKER_HOST: host, DOCKER_CONFIG: cliConfig };
  const exec = (cmd: string, args: string[], opts: RunOptions = {}) => run(cmd, args, { ...opts, env: { ...env, ...opts.env } });
  const docker = (args: string[], opts: Pick<RunOptions, 'timeoutMs' | 'input' | 'env'> = {}) => exec(DOCKER_CLI, args, opts);

  const sweep = async () => {
    const ids = (await docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await docker(['rm', '-f', '-v', ...ids], { timeoutMs: 120_000 });
    await docker(['network', 'prune', '-f']);
    await docker(['volume', 'prune', '-f']);
    // Images pulled from registries on loopback (the cluster under test): a
    // later run must download their layers again, not find them here.
    const pulled = (await docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout
      .split('\n')
      .filter((ref) => /^127\.\d+\.\d+\.\d+:\d+\//.test(ref));
    if (pulled.length) await docker(['rmi', '-f', ...pulled], { timeoutMs: 120_000 });
  };
  await sweep();

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    await sweep().catch(() => undefined);
    // Images of earlier builds that lost their tag; the tagged ones are the cache.
    await docker(['image', 'prune', '-f'], { timeoutMs: 120_000 }).catch(() => undefined);
    const ctd = Number.parseInt(await readFile(path.join(scratch, 'exec/containerd/containerd.pid'), 'utf8').catch(() => ''), 10);
    await proc.stop();
    if (ctd > 0) await waitForPidExit(ctd, 10_000);
    await release?.();
    await removeScratchDir(scratch);
  };
  return {
    host,
    dataRoot,
    storageDriver: driver,
    persistent,
    logFile,
    docker,
    exec,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}
