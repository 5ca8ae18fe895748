import {
  type BuildJobData,
  type BuildJobResult,
  Failed,
  type NixSystem,
  type PublishedImage,
  type Redis,
  buildQueueName,
  decodeFailure,
} from '@nixery/shared';
import { type Job, Queue, QueueEvents } from 'bullmq';

/** What the registry needs from the build queue (a fake in in-process tests). */
export interface Builds {
  /** Requests a build and waits for it; throws `Failed` (the build's failure, `timeout`, `no_worker`). */
  build(data: BuildJobData): Promise<PublishedImage>;
  /** Makes sure the queue for `system` is live before the first request. */
  warm(system: NixSystem): Promise<void>;
  close(): Promise<void>;
}

/** Job states in which a build is still to come (the wait ran out, not the build). */
const PENDING = new Set(['waiting', 'prioritized', 'delayed', 'active', 'waiting-children']);

/**
 * The gateway's side of the build queue: adds one job per build key (the job
 * id, so concurrent identical requests on any gateway share one job) and waits
 * for its result with a bounded wait. The job's return value is the published
 * image or its encoded failure; a failed result is removed at once (failed
 * builds are not kept), and one kept from an earlier request is built again.
 */
export class BuildClient implements Builds {
  private readonly queues = new Map<NixSystem, { queue: Queue<BuildJobData, BuildJobResult>; events: QueueEvents }>();

  constructor(
    private readonly opts: { connect: () => Redis; prefix: string; waitMs: number; attempts?: number },
  ) {}

  private forSystem(system: NixSystem) {
    let q = this.queues.get(system);
    if (!q) {
      const name = buildQueueName(system);
      q = {
        queue: new Queue<BuildJobData, BuildJobResult>(name, { connection: this.opts.connect(), prefix: this.opts.prefix }),
        events: new QueueEvents(name, { connection: this.opts.connect(), prefix: this.opts.prefix }),
      };
      this.queues.set(system, q);
    }
    return q;
  }

  async warm(system: NixSystem): Promise<void> {
    await this.forSystem(system).events.waitUntilReady();
  }

  async build(data: BuildJobData): Promise<PublishedImage> {
    const { queue, events } = this.forSystem(data.image.system);
    await events.waitUntilReady();
    const asked = Date.now();
    for (let again = true; ; again = false) {
      const job = await queue.add('build', data, {
        jobId: data.buildKey,
        attempts: this.opts.attempts ?? 3,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { age: 3600, count: 1000 },
        removeOnFail: true,
      });
      const result = await this.wait(queue, events, job, data);
      if (result.ok) return result.image;
      const finishedOn = (await queue.getJob(data.buildKey).catch(() => undefined))?.finishedOn;
      await queue.remove(data.buildKey).catch(() => undefined);
      if (again && finishedOn !== undefined && finishedOn < asked) continue;
      throw new Failed(decodeFailure(result.failure));
    }
  }

  /** The job's result; a wait that runs out (the job is still pending) is `timeout` or `no_worker`, a job that failed outright `internal`. */
  private async wait(queue: Queue<BuildJobData, BuildJobResult>, events: QueueEvents, job: Job<BuildJobData, BuildJobResult>, data: BuildJobData): Promise<BuildJobResult> {
    try {
      return await job.waitUntilFinished(events, this.opts.waitMs);
    } catch {
      const state = await queue.getJobState(data.buildKey).catch(() => 'unknown');
      if (!PENDING.has(state)) throw new Failed({ kind: 'internal', message: `build job ended in state ${state}` });
      const workers = await queue.getWorkersCount().catch(() => 0);
      if ((state === 'waiting' || state === 'prioritized') && workers === 0) throw new Failed({ kind: 'no_worker', system: data.image.system });
      throw new Failed({ kind: 'timeout', what: 'the image build', ms: this.opts.waitMs });
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].flatMap((q) => [q.events.close(), q.queue.close()]));
  }
}
