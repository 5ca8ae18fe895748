/**
 * Failures as data. Every room that can fail in a way a client must hear
 * about says so with one of these values (returned, or thrown inside a
 * `Failed`); nothing recognises a failure by its message text. The gateway
 * maps each kind to its registry error and status in one table
 * (apps/gateway/src/failures.ts); build failures cross the queue through the
 * codec in jobs/failure-codec.ts.
 */

/** Why something failed, by kind. Messages and details are safe to show to clients. */
export type Failure =
  /** sources: a moving package source (git refs, channel revision, local tree) cannot be read and nothing recent is known. */
  | { kind: 'source_unavailable'; source: string; error: string }
  /** sources: the image tag names no branch or tag of the package repository. */
  | { kind: 'unknown_ref'; ref: string }
  /** nix: packages the package set does not have. */
  | { kind: 'unknown_packages'; packages: string[] }
  /** nix: evaluating or building failed; `transient` when retrying may help (timeouts, network, locks). */
  | { kind: 'nix_failed'; message: string; transient: boolean }
  /** nix: the machine's Nix cannot build at all (its self-check failed): the machine, not the image. `hint` says how an operator fixes it. */
  | { kind: 'nix_unavailable'; cause: string; hint: string }
  /** storage: no space left for a blob (ENOSPC, EDQUOT); `message` names the error without paths. */
  | { kind: 'storage_full'; message: string }
  /**
   * storage: the backend failed an operation for another reason: an I/O
   * error (EIO), a read-only or refused target (EROFS, EACCES), a GCS error
   * status (5xx, 429, 403) or a connection that failed. `backend` is the
   * driver's name, `cause` the error without paths.
   */
  | { kind: 'storage_unavailable'; backend: string; cause: string }
  /**
   * records, jobs: the shared state (Redis) cannot be reached right now, or
   * answers but refuses writes: then `refusal` is the error code Redis sent
   * (`MISCONF`: a failed snapshot; `OOM`: maxmemory reached; `READONLY`: a replica).
   */
  | { kind: 'state_unavailable'; what: string; refusal?: string }
  /** core: something took longer than it may (`what` names it). */
  | { kind: 'timeout'; what: string; ms: number }
  /** jobs: no worker for the image's system took the build. */
  | { kind: 'no_worker'; system: string }
  /** a gateway (admission, issue 12): the client used up its cold builds for now; a token comes back in `retryAfterSeconds`. */
  | { kind: 'rate_limited'; retryAfterSeconds: number }
  /** a gateway (admission, issue 12): `limit` builds already wait in the cluster. */
  | { kind: 'queue_full'; limit: number }
  /** a gateway: the client hung up while its pull waited (nobody reads the answer; issue 12). */
  | { kind: 'client_gone' }
  /** a gateway: it is shutting down and the answer did not come within its grace. */
  | { kind: 'shutting_down' }
  /** anything else: the message is for logs, never shown to clients. */
  | { kind: 'internal'; message: string };

/** A failure kind. */
export type FailureKind = Failure['kind'];

/** An Error that carries a {@link Failure}, for code paths that throw. */
export class Failed extends Error {
  override readonly name = 'Failed';
  constructor(readonly failure: Failure) {
    super(describeFailure(failure));
  }
}

/** The failure `err` carries, or null when it is not a {@link Failed}. */
export function failureOf(err: unknown): Failure | null {
  return err instanceof Failed ? err.failure : null;
}

/** A one-line description of a failure, for logs. */
export function describeFailure(f: Failure): string {
  switch (f.kind) {
    case 'source_unavailable':
      return `cannot resolve the package source (${f.source}): ${f.error}`;
    case 'unknown_ref':
      return `no branch or tag named "${f.ref}" in the package repository`;
    case 'unknown_packages':
      return `unknown packages: ${f.packages.join(', ')}`;
    case 'nix_failed':
      return f.message;
    case 'nix_unavailable':
      return `Nix cannot build on the worker: ${f.cause}`;
    case 'storage_full':
      return `storage is full: ${f.message}`;
    case 'storage_unavailable':
      return `storage (${f.backend}) failed: ${f.cause}`;
    case 'state_unavailable':
      return f.refusal ? `${f.what} refuses writes (${f.refusal})` : `cannot reach ${f.what}`;
    case 'timeout':
      return `${f.what} timed out after ${f.ms} ms`;
    case 'no_worker':
      return `no worker builds for ${f.system}`;
    case 'rate_limited':
      return `too many new builds; retry in ${f.retryAfterSeconds} s`;
    case 'queue_full':
      return `${f.limit} builds are waiting already`;
    case 'client_gone':
      return 'the client went away';
    case 'shutting_down':
      return 'the registry is shutting down';
    case 'internal':
      return f.message;
  }
}
