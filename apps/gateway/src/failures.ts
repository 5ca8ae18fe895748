import { type Failure, type FailureKind, RegistryError } from '@nixery/shared';

type Row<K extends FailureKind> = (f: Extract<Failure, { kind: K }>) => RegistryError;

/**
 * The one table from domain failures to registry errors: each failure kind
 * (see libs/shared/src/core/failure.ts), its code, status, message, the
 * detail clients may see, and Retry-After where waiting helps. `internal`
 * shows nothing of its message.
 */
const TABLE: { [K in FailureKind]: Row<K> } = {
  unknown_packages: (f) => new RegistryError('MANIFEST_UNKNOWN', `unknown packages: ${f.packages.join(', ')}`, { unknownPackages: f.packages }),
  unknown_ref: (f) => new RegistryError('MANIFEST_UNKNOWN', `no branch or tag named "${f.ref}" in the package repository`, { tag: f.ref }),
  // 404 is only for packages the set lacks: a build that fails is the server's failure.
  nix_failed: (f) =>
    f.transient
      ? new RegistryError('UNAVAILABLE', 'image build failed after retries; try again later', { error: f.message }, { 'Retry-After': '30' })
      : new RegistryError('UNAVAILABLE', 'image build failed', { error: f.message }),
  nix_unavailable: (f) =>
    new RegistryError('UNAVAILABLE', 'the build environment is broken: Nix cannot build', { cause: f.cause, hint: f.hint }, { 'Retry-After': '60' }),
  source_unavailable: (f) =>
    new RegistryError('UNAVAILABLE', `cannot resolve the package source (${f.source}); retry later`, { source: f.source, error: f.error }, { 'Retry-After': '5' }),
  storage_full: (f) => new RegistryError('UNAVAILABLE', 'the registry storage is full; try again later', { cause: f.message }, { 'Retry-After': '60' }),
  storage_unavailable: (f) =>
    new RegistryError('UNAVAILABLE', 'the registry storage failed; try again later', { backend: f.backend, cause: f.cause }, { 'Retry-After': '30' }),
  state_unavailable: (f) =>
    f.refusal
      ? new RegistryError('UNAVAILABLE', `${f.what} refuses writes (${f.refusal}); try again later`, { refusal: f.refusal }, { 'Retry-After': '30' })
      : new RegistryError('UNAVAILABLE', `the registry cannot reach ${f.what} right now; try again`, undefined, { 'Retry-After': '5' }),
  timeout: (f) => new RegistryError('UNAVAILABLE', `${f.what} is taking longer than ${Math.round(f.ms / 1000)} s; retry the pull`, undefined, { 'Retry-After': '10' }),
  no_worker: (f) =>
    new RegistryError('UNAVAILABLE', `no worker that builds for ${f.system} took the build in time`, { system: f.system }, { 'Retry-After': '30' }),
  rate_limited: (f) =>
    new RegistryError('TOOMANYREQUESTS', `too many new images asked for; retry in ${f.retryAfterSeconds} s`, { retryAfterSeconds: f.retryAfterSeconds }, { 'Retry-After': String(f.retryAfterSeconds) }),
  queue_full: (f) => new RegistryError('UNAVAILABLE', `the build queue is full (${f.limit} builds waiting); retry later`, { limit: f.limit }, { 'Retry-After': '30' }),
  client_gone: () => new RegistryError('UNAVAILABLE', 'the client went away'),
  shutting_down: () => new RegistryError('UNAVAILABLE', 'the registry is restarting; retry the pull', undefined, { 'Retry-After': '5' }),
  internal: () => new RegistryError('UNAVAILABLE', 'image build failed, try again', undefined, { 'Retry-After': '5' }),
};

/** The registry error a client sees for a failure. */
export function registryErrorFor(f: Failure): RegistryError {
  return (TABLE[f.kind] as Row<typeof f.kind>)(f as never);
}
