/**
 * Registry error codes, declared once as data (OCI distribution spec codes plus
 * the few the CNCF distribution registry adds). Thrown as `RegistryError` and
 * turned into the `{"errors":[...]}` body by one gateway middleware.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest is not valid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  TAG_INVALID: { status: 400, message: 'invalid tag' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported: this registry is pull-only' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

/** A registry error code name. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** An error that maps to a registry error response. `detail` is safe to show to clients. */
export class RegistryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    /** Extra response headers (e.g. Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'RegistryError';
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  /** The spec's JSON body for this error. */
  toBody(): { errors: { code: string; message: string; detail?: unknown }[] } {
    const e: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) e.detail = this.detail;
    return { errors: [e] };
  }
}

/**
 * Why a build failed, as data carried from worker to gateway through the queue
 * (serialised into the job's failure reason).
 */
export type BuildFailure =
  | { kind: 'unknown_packages'; packages: string[] }
  | { kind: 'nix_failed'; message: string; transient?: boolean }
  /** The worker's Nix cannot build anything (self-check failed): the machine, not the image. */
  | { kind: 'nix_unavailable'; cause: string; hint: string }
  | { kind: 'no_worker'; system: string }
  | { kind: 'internal'; message: string };

const FAILURE_PREFIX = 'nixery-build-failure:';

/** Serialises a build failure into an Error message that survives BullMQ. */
export function encodeFailure(f: BuildFailure): string {
  return FAILURE_PREFIX + JSON.stringify(f);
}

/** Reads a build failure back from a job's failed reason; unknown text becomes `internal`. */
export function decodeFailure(reason: string | undefined): BuildFailure {
  if (reason?.startsWith(FAILURE_PREFIX)) {
    try {
      return JSON.parse(reason.slice(FAILURE_PREFIX.length)) as BuildFailure;
    } catch {
      /* fall through */
    }
  }
  return { kind: 'internal', message: reason ?? 'unknown failure' };
}

/** The registry error a client sees for a failed build. */
export function failureToRegistryError(f: BuildFailure): RegistryError {
  switch (f.kind) {
    case 'unknown_packages':
      return new RegistryError('MANIFEST_UNKNOWN', `unknown packages: ${f.packages.join(', ')}`, {
        unknownPackages: f.packages,
      });
    // 404 is only for packages the set lacks: a build that fails is the server's failure.
    case 'nix_failed':
      return f.transient
        ? new RegistryError('UNAVAILABLE', 'image build failed after retries; try again later', { error: f.message }, { 'Retry-After': '30' })
        : new RegistryError('UNAVAILABLE', 'image build failed', { error: f.message });
    case 'nix_unavailable':
      return new RegistryError('UNAVAILABLE', 'the build environment is broken: Nix cannot build', { cause: f.cause, hint: f.hint }, { 'Retry-After': '60' });
    case 'no_worker':
      return new RegistryError('UNAVAILABLE', `no worker that builds for ${f.system} took the build in time`, {
        system: f.system,
      }, { 'Retry-After': '30' });
    case 'internal':
      return new RegistryError('UNAVAILABLE', 'image build failed, try again', undefined, { 'Retry-After': '5' });
  }
}
