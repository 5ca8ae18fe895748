import {
  NIX_SYSTEMS,
  type BuildJobData,
  type BuildJobResult,
  Failed,
  type NixSystem,
  type PublishedImage,
  type Redis,
  buildQueueName,
  decodeFailure,
  redisReady,
  redisStep,
  requireRedis,
  unlessRedisGone,
  untilAborted,
} from '@nixery/shared';
import { type Job, Queue, QueueEvents } from 'bullmq';
import { dropAbandoned } from './abandoned';
import type { Admission } from './admission';
import type { Waiters } from './waiters';

/** Who asks for a build and until when (issue 12). */
export interface BuildRequest {
  /** The admission key of the client (`user:<name>` or `addr:<address>`); without it the request is not admitted (in-process use). */
  client?: string;
  /** Aborts when the client hangs up: the request stops waiting and no longer counts as a waiter. */
  gone?: AbortSignal;
}

/** What the registry needs from the build queue (a fake in in-process tests). */
export interface Builds {
  /** Requests a build and waits for it; throws `Failed` (the build's failure, `timeout`, `no_worker`). */
  build(data: BuildJobData, req?: BuildRequest): Promise<PublishedImage>;
  /** Makes sure the queue for `system` is live before the first request. */
  warm(system: NixSystem): Promise<void>;
  close(): Promise<void>;
}

/** Bound of each Redis step of a request besides the wait itself (adding the job, reading its state). */
const STEP_MS = 3000;

/** How long a close waits for BullMQ once Redis is unreachable (its close would wait for Redis forever). */
const CLOSE_PATIENCE_MS = 1000;

/** Job states in which a build is still to come (the wait ran out, not the build). */
const PENDING = new Set(['waiting', 'prioritized', 'delayed', 'active', 'waiting-children']);

/**
 * The gateway's side of the build queue: adds one job per build key (the job
 * id, so concurrent identical requests on any gateway share one job) and waits
 * for its result with a bounded wait. The job's return value is the published
 * image or its encoded failure; a failed result is removed at once (failed
 * builds are not kept), and one kept from an earlier request is built again.
 *
 * Nothing here waits for Redis unbounded: with Redis unreachable a request
 * fails at once (`state_unavailable`, 503 with Retry-After) instead of
 * queueing commands; a request already waiting gets its answer when its
 * wait (`waitMs`) ends, every later Redis step bounded by {@link STEP_MS};
 * `close` gives up on BullMQ once Redis has been away for a second.
 */
export class BuildClient implements Builds {
  private readonly queues = new Map<NixSystem, { queue: Queue<BuildJobData, BuildJobResult>; events: QueueEvents; conn: Redis; connected?: true }>();

  constructor(
    private readonly opts: {
      connect: () => Redis;
      prefix: string;
      waitMs: number;
      attempts?: number;
      /** Errors of the queue and its event stream (Redis away, mostly); without it they go to stderr. */
      onError?: (err: Error) => void;
      /** Admission of cold builds and the waiter records with their bound (issue 12); without them every build is admitted. */
      admission?: { admit: Admission; waiters: Waiters; abandonAfterMs: number; onDropped?: (system: NixSystem, ids: string[]) => void };
    },
  ) {}

  private sweeper?: NodeJS.Timeout;

  /**
   * Every `intervalMs`, removes abandoned builds from every system's queue
   * (see `dropAbandoned`); any number of gateways may do it at once.
   */
  startSweeping(intervalMs: number): void {
    const a = this.opts.admission;
    if (!a || this.sweeper) return;
    let running = false;
    this.sweeper = setInterval(() => {
      if (running) return;
      running = true;
      Promise.all(NIX_SYSTEMS.map((s) => this.drop(s)))
        .catch((err: unknown) => this.opts.onError?.(err instanceof Error ? err : new Error(String(err))))
        .finally(() => (running = false));
    }, intervalMs);
    this.sweeper.unref();
  }

  /** Removes abandoned builds of `system` (only `ids` when given; `now`: whatever their age). */
  private async drop(system: NixSystem, ids?: string[], now = false): Promise<void> {
    const a = this.opts.admission;
    const q = this.forSystem(system);
    if (!a || !redisReady(q.conn)) return;
    const removed = await redisStep(dropAbandoned(q.queue, q.conn, a.waiters, { afterMs: now ? 0 : a.abandonAfterMs, ...(ids ? { ids } : {}) }), STEP_MS * 3, 'removing abandoned builds');
    if (removed.length > 0) a.onDropped?.(system, removed);
  }

  private forSystem(system: NixSystem) {
    let q = this.queues.get(system);
    if (!q) {
      const name = buildQueueName(system);
      const conn = this.opts.connect();
      q = {
        queue: new Queue<BuildJobData, BuildJobResult>(name, { connection: conn, prefix: this.opts.prefix }),
        events: new QueueEvents(name, { connection: this.opts.connect(), prefix: this.opts.prefix }),
        conn,
      };
      const onError = this.opts.onError ?? (() => undefined);
      q.queue.on('error', onError);
      q.events.on('error', onError);
      this.queues.set(system, q);
    }
    return q;
  }

  async warm(system: NixSystem): Promise<void> {
    await this.forSystem(system).events.waitUntilReady();
  }

  async build(data: BuildJobData, req: BuildRequest = {}): Promise<PublishedImage> {
    const q = this.forSystem(data.image.system);
    const { conn } = q;
    if (!q.connected) {
      // The first request for a system makes its connections: they get a moment to come up.
      await redisStep(Promise.all([q.queue.waitUntilReady(), q.events.waitUntilReady()]), STEP_MS, 'connecting to the build queue');
      q.connected = true;
    }
    const a = this.opts.admission;
    if (!a || req.client === undefined) return this.buildAdmitted(data, 1);
    requireRedis(conn);
    const decision = await redisStep(a.admit.admit(req.client, data.image.system, data.buildKey), STEP_MS, 'admitting the build');
    const waiter = await redisStep(a.waiters.join(data.buildKey), STEP_MS, 'recording the waiter');
    let failure: string | undefined;
    try {
      const built = this.buildAdmitted(data, decision.outcome === 'admitted' ? decision.priority : 1);
      return await (req.gone ? untilAborted(built, req.gone, { kind: 'client_gone' }) : built);
    } catch (err) {
      failure = err instanceof Failed ? err.failure.kind : 'internal';
      throw err;
    } finally {
      // A waiter that leaves unanswered (hung up, timed out, no worker) may leave an abandoned build behind.
      await redisStep(waiter.leave(), STEP_MS, 'removing the waiter').catch(() => undefined);
      if (failure) await this.drop(data.image.system, [data.buildKey], failure === 'no_worker').catch(() => undefined);
    }
  }

  /** Adds the job (or joins the one of the same build key) and waits for its result. */
  private async buildAdmitted(data: BuildJobData, priority: number): Promise<PublishedImage> {
    const { queue, events, conn } = this.forSystem(data.image.system);
    const asked = Date.now();
    for (let again = true; ; again = false) {
      requireRedis(conn);
      const job = await redisStep(
        queue.add('build', data, {
          jobId: data.buildKey,
          attempts: this.opts.attempts ?? 3,
          backoff: { type: 'exponential', delay: 2000 },
          removeOnComplete: { age: 3600, count: 1000 },
          removeOnFail: true,
          priority,
        }),
        STEP_MS,
        'adding the build job',
      );
      const result = await this.wait(queue, events, conn, job, data);
      if (result.ok) return result.image;
      const finishedOn = (await redisStep(queue.getJob(data.buildKey), STEP_MS, 'reading the build job').catch(() => undefined))?.finishedOn;
      await redisStep(queue.remove(data.buildKey), STEP_MS, 'removing the failed build job').catch(() => undefined);
      if (again && finishedOn !== undefined && finishedOn < asked) continue;
      throw new Failed(decodeFailure(result.failure));
    }
  }

  /**
   * The job's result; a wait that runs out (the job is still pending) is `timeout` or `no_worker`,
   * a job that failed outright `internal`, and one whose state cannot be read then (Redis away) `state_unavailable`.
   */
  private async wait(
    queue: Queue<BuildJobData, BuildJobResult>,
    events: QueueEvents,
    conn: Redis,
    job: Job<BuildJobData, BuildJobResult>,
    data: BuildJobData,
  ): Promise<BuildJobResult> {
    try {
      return await job.waitUntilFinished(events, this.opts.waitMs);
    } catch {
      requireRedis(conn);
      const state = await redisStep(queue.getJobState(data.buildKey), STEP_MS, 'reading the build job state');
      if (!PENDING.has(state)) throw new Failed({ kind: 'internal', message: `build job ended in state ${state}` });
      const workers = await redisStep(queue.getWorkersCount(), STEP_MS, 'counting workers').catch(() => 0);
      if ((state === 'waiting' || state === 'prioritized') && workers === 0) throw new Failed({ kind: 'no_worker', system: data.image.system });
      throw new Failed({ kind: 'timeout', what: 'the image build', ms: this.opts.waitMs });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.opts.admission?.waiters.close();
    await Promise.all(
      [...this.queues.values()].map((q) => unlessRedisGone(q.conn, Promise.all([q.events.close(), q.queue.close()]), { patienceMs: CLOSE_PATIENCE_MS })),
    );
  }
}
