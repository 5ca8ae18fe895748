import { spawn } from 'node:child_process';

/** Options of {@link runCommand}. */
export interface RunOptions {
  /** Kill the process group after this many milliseconds. Required: nothing here runs unbounded. */
  timeoutMs: number;
  /** Aborting kills the process group. */
  signal?: AbortSignal;
  /** Environment of the child. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Working directory. Default: this process's. */
  cwd?: string;
  /** Called with each complete line the child writes to stderr (without the newline). */
  onStderrLine?: (line: string) => void;
  /** How many characters of stderr to keep (the tail). Default 64 KiB. */
  stderrLimit?: number;
  /** How long to wait after SIGTERM before SIGKILL. Default 2000 ms. */
  killGraceMs?: number;
}

/** What a finished (or killed) child process left behind. */
export interface RunResult {
  /** Everything written to stdout. */
  stdout: string;
  /** The last `stderrLimit` characters written to stderr. */
  stderr: string;
  /** Exit code; -1 when the process was ended by a signal or could not be started. */
  code: number;
  /** The signal that ended the process, if any. */
  exitSignal: NodeJS.Signals | null;
  /** True when the timeout killed it. */
  timedOut: boolean;
  /** True when the abort signal killed it (or was already aborted). */
  aborted: boolean;
  /** Why the process could not be started (e.g. "spawn nix ENOENT"), if it could not. */
  spawnError?: string;
  /** Process id (also its process group id), when it started. */
  pid?: number;
}

const DEFAULT_STDERR_LIMIT = 64 * 1024;
const DEFAULT_KILL_GRACE_MS = 2000;

/**
 * Runs `cmd args` in its own process group, draining stdout and stderr at the
 * same time (a full pipe never stalls it). On timeout or abort the whole group
 * gets SIGTERM, then SIGKILL after `killGraceMs`. Never rejects: failures are
 * in the result.
 */
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const stderrLimit = opts.stderrLimit ?? DEFAULT_STDERR_LIMIT;
  const killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;

  return new Promise<RunResult>((resolve) => {
    if (opts.signal?.aborted) {
      resolve({ stdout: '', stderr: '', code: -1, exitSignal: null, timedOut: false, aborted: true });
      return;
    }

    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env, // undefined: inherit this process's environment
      detached: true, // own process group, so the whole tree can be killed
      stdio: ['ignore', 'pipe', 'pipe'],
    });

    const stdoutChunks: Buffer[] = [];
    let stderrTail = '';
    let partialLine = '';
    let timedOut = false;
    let aborted = false;
    let spawnError: string | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // the group is already gone
      }
    };
    const terminate = (): void => {
      killGroup('SIGTERM');
      killTimer ??= setTimeout(() => killGroup('SIGKILL'), killGraceMs);
      killTimer.unref();
    };

    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, opts.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      terminate();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => stdoutChunks.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderrTail += chunk;
      if (stderrTail.length > stderrLimit) stderrTail = stderrTail.slice(stderrTail.length - stderrLimit);
      if (opts.onStderrLine) {
        const lines = (partialLine + chunk).split('\n');
        partialLine = lines.pop() ?? '';
        for (const line of lines) opts.onStderrLine(line);
      }
    });

    const finish = (code: number | null, exitSignal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      // Whatever the child left running in its group goes too.
      if (timedOut || aborted) {
        killGroup('SIGKILL');
      }
      if (killTimer) clearTimeout(killTimer);
      if (opts.onStderrLine && partialLine !== '') opts.onStderrLine(partialLine);
      resolve({
        stdout: Buffer.concat(stdoutChunks).toString('utf8'),
        stderr: stderrTail,
        code: code ?? -1,
        exitSignal,
        timedOut,
        aborted,
        ...(spawnError !== undefined ? { spawnError } : {}),
        ...(child.pid !== undefined ? { pid: child.pid } : {}),
      });
    };

    child.on('error', (err) => {
      spawnError = err.message;
      stderrTail += `${stderrTail && !stderrTail.endsWith('\n') ? '\n' : ''}${err.message}\n`;
      // 'close' may not follow a failed spawn.
      if (child.pid === undefined) finish(-1, null);
    });
    child.on('close', (code, sig) => finish(code, sig));
  });
}
