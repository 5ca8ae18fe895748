/**
 * Starts a private containerd for end-to-end tests.
 *
 * Root, state, gRPC/ttrpc sockets and the `opt` plugin dir all live in one
 * scratch directory; the CRI plugin is disabled (it would want CNI and
 * networking); debug and metrics listeners are off. Several instances can run
 * at once, next to a dockerd's own containerd. `stop()` kills leftover tasks,
 * stops the daemon and deletes the directory.
 *
 * Pull from a plain-HTTP registry with
 *   ctr --address SOCK images pull --plain-http 127.0.0.1:PORT/NAME:TAG
 * (the default overlayfs snapshotter works on this machine; `ctr run` too).
 */
import { rmdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { makeScratchDir, removeScratchDir, run, startProcess, type RunOptions, type RunResult } from './proc';

/** Options for `startContainerd`. All optional. */
export interface ContainerdOptions {
  /** containerd executable. Default `containerd`. */
  containerdBin?: string;
  /** ctr executable. Default `ctr`. */
  ctrBin?: string;
  /** How long to wait for `ctr version` to succeed. Default 30 000 ms. */
  readyTimeoutMs?: number;
  /**
   * containerd namespace `ctr` uses (CONTAINERD_NAMESPACE; `-n` in args still
   * wins). Default: unique per instance, because the runc v2 shim keeps task
   * state in the machine-wide /run/containerd/runc/<namespace>/<id>, so two
   * instances using the same namespace could clash on container ids.
   */
  namespace?: string;
}

/** Options for one ctr call. */
export type CtrRunOptions = Pick<RunOptions, 'timeoutMs' | 'input' | 'cwd'>;

/** A running private containerd. */
export interface Containerd {
  /** Path of the gRPC unix socket (value for `ctr --address`). */
  readonly address: string;
  /** The namespace `ctr` calls use unless they pass `-n`. */
  readonly namespace: string;
  /** The scratch directory holding everything of this daemon. */
  readonly dir: string;
  readonly logFile: string;
  /** Runs `ctr --address <address> ...args` in `namespace`. */
  ctr(args: string[], opts?: CtrRunOptions): Promise<RunResult>;
  /** Kills leftover tasks, stops containerd and deletes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** The TOML config of a containerd confined to `dir`. Paths must not hold quotes. */
export function containerdConfig(dir: string): string {
  return [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '',
    '[grpc]',
    `  address = "${join(dir, 'containerd.sock')}"`,
    '',
    '[ttrpc]',
    `  address = "${join(dir, 'containerd.sock.ttrpc')}"`,
    '',
    '[debug]',
    '  address = ""',
    '',
    '[metrics]',
    '  address = ""',
    '',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${join(dir, 'opt')}"`,
    '',
  ].join('\n');
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
}

/** Starts a private containerd in a fresh scratch directory and waits until it answers. */
export async function startContainerd(opts: ContainerdOptions = {}): Promise<Containerd> {
  const dir = await makeScratchDir('nixery-containerd-');
  const configFile = join(dir, 'config.toml');
  const address = join(dir, 'containerd.sock');
  const logFile = join(dir, 'containerd.log');
  const ctrBin = opts.ctrBin ?? 'ctr';
  const namespace = opts.namespace ?? `test-${basename(dir).replace(/[^A-Za-z0-9-]/g, '-')}`;
  await writeFile(configFile, containerdConfig(dir));

  const ctr = (args: string[], runOpts: CtrRunOptions = {}): Promise<RunResult> =>
    run(ctrBin, ['--address', address, ...args], { ...runOpts, env: { CONTAINERD_NAMESPACE: namespace } });

  let proc;
  try {
    proc = await startProcess({
      name: 'containerd',
      cmd: opts.containerdBin ?? 'containerd',
      args: ['--config', configFile],
      logFile,
      ready: async () => (await ctr(['version'], { timeoutMs: 5_000 })).code === 0,
      readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
    });
  } catch (e) {
    await removeScratchDir(dir);
    throw e;
  }
  const started = proc;

  /** Shims run in their own sessions: kill and delete tasks so none outlive the daemon. */
  const killTasks = async (): Promise<void> => {
    const ns = await ctr(['namespaces', 'ls', '-q'], { timeoutMs: 10_000 });
    if (ns.code !== 0) return;
    for (const n of lines(ns.stdout)) {
      const tasks = await ctr(['-n', n, 'tasks', 'ls', '-q'], { timeoutMs: 10_000 });
      if (tasks.code !== 0) continue;
      for (const id of lines(tasks.stdout)) {
        await ctr(['-n', n, 'tasks', 'kill', '-a', '-s', 'SIGKILL', id], { timeoutMs: 10_000 });
        await ctr(['-n', n, 'tasks', 'delete', '-f', id], { timeoutMs: 10_000 });
      }
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    if (!started.hasExited()) await killTasks();
    await started.stop();
    await removeScratchDir(dir);
    // The shim's per-namespace runc state dir lives outside `dir`; drop it if empty.
    await rmdir(join('/run/containerd/runc', namespace)).catch(() => undefined);
  };

  return {
    address,
    namespace,
    dir,
    logFile,
    ctr,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}
