import { Failed, NIX_SYSTEMS, type NixSystem, type Redis, buildQueueName } from '@nixery/shared';

/**
 * Admission of cold builds (issue 12), cluster-wide and atomic: one Lua
 * script decides, for a request whose image is not in the manifest cache,
 *
 * - `joined`: a job for its build key exists already (queued, running or
 *   just finished). Joining adds no work, so it takes no token and is never
 *   refused: a client retrying after a timeout, and many clients asking for
 *   the same new image, all wait on the one build.
 * - `queue_full`: `maxQueued` builds wait (not active) in the whole
 *   cluster, all systems' queues together (so every queue is bounded too).
 * - `rate_limited`: the client's token bucket is empty; the answer says
 *   when the next token comes.
 * - `admitted` with a priority: 1 + the client's own builds still waiting
 *   in that system's queue. BullMQ takes lower numbers first and keeps FIFO
 *   order within one, so a client with nothing queued goes before the
 *   second, third ... build of a client that floods (fairness).
 *
 * The bucket holds `tokens` and refills `tokens` per `perMs`; its state is
 * one hash per client (`tokens`, `at`) that expires once it would be full.
 */
const ADMIT_LUA = `
local jobKey, bucket, mine, prioritized = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cap, perMs, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local maxQueued, jobId = tonumber(ARGV[4]), ARGV[5]
if redis.call('exists', jobKey) == 1 then return {'joined', 0} end
if maxQueued > 0 then
  local queued = 0
  for i = 5, #KEYS, 2 do queued = queued + redis.call('zcard', KEYS[i]) + redis.call('llen', KEYS[i + 1]) end
  if queued >= maxQueued then return {'queue_full', queued} end
end
if cap > 0 then
  local b = redis.call('hmget', bucket, 'tokens', 'at')
  local tokens, at = tonumber(b[1]) or cap, tonumber(b[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - at) * cap / perMs)
  if tokens < 1 then return {'rate_limited', math.ceil((1 - tokens) * perMs / cap)} end
  redis.call('hset', bucket, 'tokens', tostring(tokens - 1), 'at', tostring(now))
  redis.call('pexpire', bucket, perMs + 1000)
end
-- this client's builds still waiting: members still in the prioritized set (or just added, 10 s)
local waiting = 0
local members = redis.call('zrange', mine, 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  if redis.call('zscore', prioritized, members[i]) or now - tonumber(members[i + 1]) < 10000 then waiting = waiting + 1
  else redis.call('zrem', mine, members[i]) end
end
redis.call('zadd', mine, now, jobId)
redis.call('pexpire', mine, 86400000)
return {'admitted', math.min(waiting + 1, 2097151)}
`;

/** What admission decided for one request (see {@link ADMIT_LUA}). */
export type AdmissionDecision = { outcome: 'joined' } | { outcome: 'admitted'; priority: number };

/** Admission settings (the config's `admission`, without what the gateway checks itself). */
export interface AdmissionSettings {
  buildRate: { tokens: number; perMs: number } | null;
  maxQueuedBuilds: number;
}

/** BullMQ's key of `what` ('prioritized', 'wait', or a job id) in the build queue of `system`. */
export function buildQueueKey(prefix: string, system: NixSystem, what: string): string {
  return `${prefix}:${buildQueueName(system)}:${what}`;
}

/** Admits cold builds; throws `Failed` (`rate_limited`, `queue_full`) when a request may not enqueue one. */
export class Admission {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly settings: AdmissionSettings,
  ) {
    redis.defineCommand('nixeryAdmit', { lua: ADMIT_LUA });
  }

  async admit(client: string, system: NixSystem, buildKey: string): Promise<AdmissionDecision> {
    const p = this.prefix;
    const rate = this.settings.buildRate;
    const queues = NIX_SYSTEMS.flatMap((s) => [buildQueueKey(p, s, 'prioritized'), buildQueueKey(p, s, 'wait')]);
    const keys = [
      buildQueueKey(p, system, buildKey),
      `${p}:admission:bucket:${client}`,
      `${p}:admission:waiting:${system}:${client}`,
      buildQueueKey(p, system, 'prioritized'),
      ...queues,
    ];
    const run = (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<[string, number]>>).nixeryAdmit!;
    const [outcome, value] = await run.call(this.redis, keys.length, ...keys, rate?.tokens ?? 0, rate?.perMs ?? 1, Date.now(), this.settings.maxQueuedBuilds, buildKey);
    switch (outcome) {
      case 'joined':
        return { outcome: 'joined' };
      case 'admitted':
        return { outcome: 'admitted', priority: value };
      case 'rate_limited':
        throw new Failed({ kind: 'rate_limited', retryAfterSeconds: Math.max(1, Math.ceil(value / 1000)) });
      default:
        throw new Failed({ kind: 'queue_full', limit: this.settings.maxQueuedBuilds });
    }
  }
}
