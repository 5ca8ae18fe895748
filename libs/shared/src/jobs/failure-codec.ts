import { z } from 'zod';
import type { Failure, FailureKind } from '../core/failure';

/** The code each failure kind crosses the queue with. */
export const FAILURE_CODES = {
  source_unavailable: 'SOURCE_UNAVAILABLE',
  unknown_ref: 'UNKNOWN_REF',
  unknown_packages: 'UNKNOWN_PACKAGES',
  nix_failed: 'NIX_FAILED',
  nix_unavailable: 'NIX_UNAVAILABLE',
  storage_full: 'STORAGE_FULL',
  storage_unavailable: 'STORAGE_UNAVAILABLE',
  state_unavailable: 'STATE_UNAVAILABLE',
  timeout: 'TIMEOUT',
  no_worker: 'NO_WORKER',
  shutting_down: 'SHUTTING_DOWN',
  rate_limited: 'RATE_LIMITED',
  queue_full: 'QUEUE_FULL',
  client_gone: 'CLIENT_GONE',
  internal: 'INTERNAL',
} as const satisfies Record<FailureKind, string>;

/** A failure code. */
export type FailureCode = (typeof FAILURE_CODES)[FailureKind];

/** A failure as a build job returns it: a code and the kind's own fields, plain JSON. */
export interface EncodedFailure {
  code: FailureCode;
  data: Record<string, unknown>;
}

const s = z.string();
const FIELDS: { [K in FailureKind]: z.ZodType<Omit<Extract<Failure, { kind: K }>, 'kind'>> } = {
  source_unavailable: z.object({ source: s, error: s }),
  unknown_ref: z.object({ ref: s }),
  unknown_packages: z.object({ packages: z.array(s) }),
  nix_failed: z.object({ message: s, transient: z.boolean() }),
  nix_unavailable: z.object({ cause: s, hint: s }),
  storage_full: z.object({ message: s }),
  storage_unavailable: z.object({ backend: s, cause: s }),
  state_unavailable: z.object({ what: s, refusal: s.optional() }),
  timeout: z.object({ what: s, ms: z.number() }),
  no_worker: z.object({ system: s }),
  shutting_down: z.object({}),
  rate_limited: z.object({ retryAfterSeconds: z.number() }),
  queue_full: z.object({ limit: z.number() }),
  client_gone: z.object({}),
  internal: z.object({ message: s }),
};

const KIND_OF = Object.fromEntries(Object.entries(FAILURE_CODES).map(([k, c]) => [c, k])) as Record<FailureCode, FailureKind>;

/** Encodes a failure for a job's return value. */
export function encodeFailure(f: Failure): EncodedFailure {
  const { kind, ...data } = f;
  return { code: FAILURE_CODES[kind], data };
}

/** Decodes a job's failure; a value of an unknown code or shape becomes `internal` (never shown to clients). */
export function decodeFailure(value: unknown): Failure {
  const v = value as Partial<EncodedFailure> | null;
  const kind = typeof v?.code === 'string' ? KIND_OF[v.code as FailureCode] : undefined;
  const fields = kind ? FIELDS[kind].safeParse(v?.data) : undefined;
  if (!kind || !fields?.success) return { kind: 'internal', message: `undecodable build failure: ${JSON.stringify(value)?.slice(0, 200)}` };
  return { kind, ...fields.data } as Failure;
}
