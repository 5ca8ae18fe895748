/**
 * Registry error codes, declared once as data (OCI distribution spec codes plus
 * the few the CNCF distribution registry adds). Made only here and in the gateway (from a
 * domain failure, by its one table) and turned into the `{"errors":[...]}`
 * body by one gateway middleware.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest is not valid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  NOT_FOUND: { status: 404, message: 'no such endpoint in this registry' },
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
