/**
 * Child-process plumbing for tests that start real services (dockerd,
 * containerd, a reference registry, ...).
 *
 * - `run` runs a command to completion with a timeout, reading stdout and
 *   stderr concurrently (a full pipe never hangs it).
 * - `startProcess` starts a long-running process in its own process group,
 *   logs to a file, and waits until a readiness predicate holds.
 * - `stopProcessGroup` sends SIGTERM to the whole group, then SIGKILL.
 * - `freePort`, `waitFor`, `makeScratchDir` and `removeScratchDir` are the
 *   small pieces around them.
 *
 * Children inherit this process's environment; `env` options add to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

/** The outcome of a finished command. A non-zero exit is data, not an exception. */
export interface RunResult {
  /** Exit code, or null when the process was ended by a signal. */
  code: number | null;
  /** The signal that ended the process, if any. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the timeout fired and the process group was killed. */
  timedOut: boolean;
}

/** Options for `run`. */
export interface RunOptions {
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the command's process group after this long. Default 120 000 ms. */
  timeoutMs?: number;
  /** Bytes written to the command's stdin (stdin is closed either way). */
  input?: string | Buffer;
}

/** Thrown by `runChecked` when a command exits non-zero or times out. */
export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    readonly result: RunResult,
  ) {
    super(
      `${cmd} ${args.join(' ')} ${result.timedOut ? 'timed out' : `exited ${result.code ?? result.signal}`}\n` +
        `stderr: ${result.stderr.slice(-4000)}\nstdout: ${result.stdout.slice(-2000)}`,
    );
    this.name = 'CommandError';
  }
}

/** Thrown by `startProcess` when a service exits early or is not ready in time. */
export class ProcessStartError extends Error {
  constructor(
    readonly service: string,
    readonly reason: 'exited' | 'timeout' | 'spawn-failed',
    readonly logTail: string,
  ) {
    super(`${service} failed to start (${reason}); log tail:\n${logTail}`);
    this.name = 'ProcessStartError';
  }
}

function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return extra ? { ...process.env, ...extra } : process.env;
}

/**
 * Runs `cmd args` to completion. Never rejects for a non-zero exit: look at
 * `code`. Rejects only when the command cannot be spawned (e.g. not installed).
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: childEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout can kill grandchildren too
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined); // command may exit before reading stdin
    child.stdin.end(opts.input ?? undefined);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}

/** Like `run`, but throws `CommandError` unless the command exits 0. */
export async function runChecked(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0 || result.timedOut) throw new CommandError(cmd, args, result);
  return result;
}

/** Sends `signal` to process group `pid` (0 only probes); false when no such group. */
function killGroup(pid: number | undefined, signal: NodeJS.Signals | 0): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sleeps for `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Resolves true when `p` settles within `ms`, false otherwise. Its timer is
 * cleared as soon as `p` settles, so it never holds the event loop open.
 */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => resolvePromise(false), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolvePromise(true);
    };
    p.then(done, done);
  });
}

/** Options for `waitFor`. */
export interface WaitOptions {
  /** Give up after this long. Default 30 000 ms. */
  timeoutMs?: number;
  /** Pause between polls. Default 100 ms. */
  intervalMs?: number;
  /** Stop early (returning false) when this returns true, e.g. the process died. */
  abandon?: () => boolean;
}

/**
 * Polls `predicate` until it returns true (resolves true), the timeout passes
 * or `abandon` says to stop (resolves false). A predicate that throws counts as false.
 */
export async function waitFor(predicate: () => Promise<boolean> | boolean, opts: WaitOptions = {}): Promise<boolean> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    let ok = false;
    try {
      ok = await predicate();
    } catch {
      ok = false;
    }
    if (ok) return true;
    if (opts.abandon?.()) return false;
    if (Date.now() >= deadline) return false;
    await sleep(opts.intervalMs ?? 100);
  }
}

/** Asks the kernel for a TCP port that is free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port from listen(0)'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolvePromise(port));
    });
  });
}

/** Options for `startProcess`. */
export interface StartOptions {
  /** Short name used in errors. */
  name: string;
  cmd: string;
  args: readonly string[];
  /** stdout and stderr of the process go to this file. */
  logFile: string;
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Polled until true; the process is then considered ready. */
  ready: () => Promise<boolean> | boolean;
  /** How long to wait for `ready`. Default 60 000 ms. */
  readyTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL when stopping. Default 15 000 ms. */
  stopGraceMs?: number;
}

/** A running long-lived process, started by `startProcess`. */
export interface LongProcess {
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code/signal when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** SIGTERM the whole process group, SIGKILL after the grace period. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<number>();
let exitHookInstalled = false;

/**
 * If the test process exits without stopping its services, SIGTERM their
 * process groups so daemons shut down on their own instead of lingering.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of live) killGroup(pid, 'SIGTERM');
  });
}

/** Reads the last `bytes` of a log file (empty when missing). */
export async function logTail(file: string, bytes = 4000): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '';
  }
}

/**
 * Starts a long-running process in its own process group with output to
 * `logFile`, and resolves once `ready` holds. Rejects with
 * `ProcessStartError` (after stopping it) if it exits first or is not ready in time.
 */
export async function startProcess(opts: StartOptions): Promise<LongProcess> {
  installExitHook();
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.cmd, opts.args, {
      cwd: opts.cwd,
      env: childEnv(opts.env),
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  const spawned = await new Promise<boolean>((r) => {
    child.once('spawn', () => r(true));
    child.once('error', () => r(false));
  });
  if (!spawned || child.pid === undefined) {
    throw new ProcessStartError(opts.name, 'spawn-failed', `could not spawn ${opts.cmd}`);
  }
  const pid = child.pid;
  live.add(pid);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => {
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(pid);
      r({ code, signal });
    });
  });
  child.unref();

  let stopping: Promise<void> | undefined;
  const proc: LongProcess = {
    pid,
    logFile: opts.logFile,
    exited,
    hasExited: () => done,
    stop: () => {
      stopping ??= stopProcessGroup(pid, exited, opts.stopGraceMs ?? 15_000);
      return stopping;
    },
  };

  const ok = await waitFor(opts.ready, {
    timeoutMs: opts.readyTimeoutMs ?? 60_000,
    intervalMs: 100,
    abandon: () => done,
  });
  if (!ok || done) {
    const reason = done ? 'exited' : 'timeout';
    await proc.stop();
    throw new ProcessStartError(opts.name, reason, await logTail(opts.logFile));
  }
  return proc;
}

/**
 * Stops a process group: SIGTERM to the group, wait up to `graceMs` for the
 * leader to exit, then SIGKILL the group. Also SIGKILLs any members still
 * left in the group after the leader exits.
 */
export async function stopProcessGroup(
  pid: number,
  exited: Promise<unknown>,
  graceMs: number,
): Promise<void> {
  if (!killGroup(pid, 'SIGTERM')) {
    await exited.catch(() => undefined);
    return;
  }
  if (!(await settlesWithin(exited, graceMs))) {
    killGroup(pid, 'SIGKILL');
    await settlesWithin(exited, 5_000);
  }
  // Stragglers that stayed in the group (the leader is gone, the group may not be).
  await waitFor(() => !killGroup(pid, 0), { timeoutMs: 2_000, intervalMs: 50 });
  killGroup(pid, 'SIGKILL');
}

/**
 * Waits for a process that is not our child (e.g. a daemon's own helper)
 * to exit, SIGKILLing it after `graceMs`.
 */
export async function waitForPidExit(pid: number, graceMs: number): Promise<void> {
  if (await waitFor(() => !isAlive(pid), { timeoutMs: graceMs, intervalMs: 50 })) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitFor(() => !isAlive(pid), { timeoutMs: 5_000, intervalMs: 50 });
}

/** Creates a fresh directory under the OS temp dir, named `<prefix>XXXXXX`. */
export function makeScratchDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
function mountsUnder(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const root = resolve(dir);
  const found: string[] = [];
  for (const line of text.split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint === undefined) continue;
    const decoded = mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === root || decoded.startsWith(root + '/')) found.push(decoded);
  }
  return found.sort((a, b) => b.length - a.length);
}

/**
 * Removes a scratch directory completely: first lazily unmounts anything a
 * daemon left mounted inside it (dockerd bind-mounts its data root, containers
 * leave netns/overlay mounts if killed), then `rm -rf`. Only for directories
 * this test process created.
 */
export async function removeScratchDir(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) {
    spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Pids of processes (other than this one) whose command line contains `text`. */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
