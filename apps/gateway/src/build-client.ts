import {
  type BuildJobData,
  type BuildJobResult,
  type NixSystem,
  type Redis,
  RegistryError,
  buildQueueName,
  decodeFailure,
  failureToRegistryError,
} from '@nixery/shared';
import { Queue, QueueEvents } from 'bullmq';

/**
 * The gateway's side of the build queue: adds one job per build key (the job
 * id, so concurrent identical requests on any gateway share one job) and waits
 * for its result with a bounded wait.
 */
export class BuildClient {
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

  /** Makes sure the queue for `system` exists (so its events are live before the first request). */
  async warm(system: NixSystem): Promise<void> {
    await this.forSystem(system).events.waitUntilReady();
  }

  /** Requests a build and waits for it. Throws RegistryError on failure or when the wait runs out. */
  async build(data: BuildJobData): Promise<BuildJobResult> {
    const { queue, events } = this.forSystem(data.image.system);
    await events.waitUntilReady();
    const job = await queue.add('build', data, {
      jobId: data.buildKey,
      attempts: this.opts.attempts ?? 3,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: true,
    });
    try {
      return await job.waitUntilFinished(events, this.opts.waitMs);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (/timed out before finishing/.test(message)) {
        const state = await queue.getJobState(data.buildKey).catch(() => 'unknown');
        const workers = await queue.getWorkersCount().catch(() => 0);
        if ((state === 'waiting' || state === 'prioritized') && workers === 0) {
          throw failureToRegistryError({ kind: 'no_worker', system: data.image.system });
        }
        throw new RegistryError('UNAVAILABLE', 'the image is still being built; retry the pull', { state }, { 'Retry-After': '10' });
      }
      throw failureToRegistryError(decodeFailure(message));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].flatMap((q) => [q.events.close(), q.queue.close()]));
  }
}
