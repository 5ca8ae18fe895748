import { setTimeout as sleep } from 'node:timers/promises';

/** One redis-server process that answered PING once. */
export interface ServerProcess {
  pid: number;
  /** Settles when the process exits. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

/**
 * `running`: a server answers (or did when it last started); `restarting`:
 * it exited and a new one is being started; `failed`: {@link SupervisorOptions.maxFailures}
 * starts in a row failed (or died within `stableMs`): restarts go on, more slowly.
 */
export type SupervisedState = 'running' | 'restarting' | 'failed';

/** What the supervisor reports, for logs and metrics. */
export type SupervisorEvent =
  | { kind: 'exited'; pid: number; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'restarted'; pid: number; failuresInARow: number }
  | { kind: 'restart_failed'; error: string; failuresInARow: number }
  | { kind: 'gave_up'; failuresInARow: number };

/** How the supervisor restarts. */
export interface SupervisorOptions {
  /** Failed starts in a row (a start that fails, or a server that dies within `stableMs`) before the state is `failed` (default 5). */
  maxFailures?: number;
  /** Pause before the n-th restart in a row: `baseDelayMs * 2^(n-1)`, at most `maxDelayMs` (defaults 250 and 15 000); the first one after a server that ran `stableMs` starts at once. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A server that lived this long was no crash loop: its exit starts the count again (default 10 000). */
  stableMs?: number;
}

/**
 * Keeps one redis-server running: when the current one exits without
 * `stop()`, it starts another through `launch` (the same socket and data
 * directory), at once the first time and with growing pauses while starts
 * keep failing. It never stops trying; after `maxFailures` in a row its
 * state is `failed` (the process's /healthz says so, see `liveness.ts`)
 * until a start succeeds again.
 */
export class RedisSupervisor {
  private current: ServerProcess;
  private stopping = false;
  private failures = 0;
  private status: SupervisedState = 'running';
  private readonly listeners: ((e: SupervisorEvent) => void)[] = [];
  private readonly opts: Required<SupervisorOptions>;

  constructor(
    first: ServerProcess,
    private readonly launch: () => Promise<ServerProcess>,
    opts: SupervisorOptions = {},
  ) {
    this.opts = { maxFailures: 5, baseDelayMs: 250, maxDelayMs: 15_000, stableMs: 10_000, ...opts };
    this.current = first;
    this.watch(first);
  }

  /** The pid of the server running now (or of the last one). */
  get pid(): number {
    return this.current.pid;
  }

  state(): SupervisedState {
    return this.status;
  }

  /** Failed starts in a row so far (0 while a server runs steadily). */
  get failuresInARow(): number {
    return this.failures;
  }

  /** Calls `listener` with every later event. */
  onEvent(listener: (e: SupervisorEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Restarts no more (a start under way kills its server); returns the current server, for the caller to stop. */
  stopSupervising(): ServerProcess {
    this.stopping = true;
    return this.current;
  }

  private emit(e: SupervisorEvent): void {
    for (const l of this.listeners) l(e);
  }

  private watch(p: ServerProcess): void {
    const startedAt = Date.now();
    void p.exit.then(({ code, signal }) => {
      if (this.stopping) return;
      this.emit({ kind: 'exited', pid: p.pid, code, signal });
      this.failures = Date.now() - startedAt < this.opts.stableMs ? this.failures + 1 : 0;
      void this.restart();
    });
  }

  private async restart(): Promise<void> {
    if (this.status !== 'failed') this.status = 'restarting';
    for (;;) {
      if (this.failures >= this.opts.maxFailures && this.status !== 'failed') {
        this.status = 'failed';
        this.emit({ kind: 'gave_up', failuresInARow: this.failures });
      }
      if (this.failures > 0) await sleep(Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (this.failures - 1)));
      if (this.stopping) return;
      try {
        const p = await this.launch();
        if (this.stopping) {
          p.kill('SIGTERM');
          return;
        }
        this.current = p;
        this.status = 'running';
        this.emit({ kind: 'restarted', pid: p.pid, failuresInARow: this.failures });
        this.watch(p);
        return;
      } catch (err) {
        this.failures++;
        this.emit({ kind: 'restart_failed', error: err instanceof Error ? err.message : String(err), failuresInARow: this.failures });
      }
    }
  }
}
