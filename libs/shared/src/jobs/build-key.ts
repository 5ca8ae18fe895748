import { createHash } from 'node:crypto';
import { BoundedMemo } from '../core/memo';
import type { ImageSpec } from '../protocol/image-spec';
import type { ResolvedSource } from '../sources/resolver';

/**
 * The build key: a hash of everything that decides an image's contents (the
 * pinned source identity, the system and the normalised package list). Equal
 * keys mean the same image; the key is the BullMQ job id and the manifest cache key.
 */
export function buildKey(image: ImageSpec, source: ResolvedSource): string {
  const kept = keys.get(image);
  if (kept?.identity === source.identity) return kept.key;
  const key = hashBuildKey(image, source);
  keys.set(image, { identity: source.identity, key });
  return key;
}

/**
 * Every warm pull needs its build key (issue 15). Specs are immutable and
 * handed out once per name (parseImage, withSystem), so each keeps the key
 * of the last source it was built from: a warm pull costs one lookup, no
 * string is built or hashed.
 */
const keys = new WeakMap<ImageSpec, { identity: string; key: string }>();

function hashBuildKey(image: ImageSpec, source: ResolvedSource): string {
  return createHash('sha256')
    .update(JSON.stringify({ v: 1, source: source.identity, system: image.system, packages: image.packages }))
    .digest('hex');
}

/**
 * The image key after evaluation (issue 12): the same hash, but over the
 * attribute paths the requested names resolved to (sorted, unique) instead of
 * the names. Names that differ only where the lookup's fallbacks meet
 * (`bashinteractive` found case-insensitively and `shell`'s `bashInteractive`;
 * `7zz` found as `_7zz`) have two build keys and one resolved key: the worker
 * looks the manifest up under it before it lays out layers, and publishes
 * under both, so every spelling gets one image and one digest. It lives among
 * the build keys of the manifest cache (its own hash input, so the two never
 * collide), which the storage collector drops like any other.
 */
export function resolvedKey(image: Pick<ImageSpec, 'system'>, source: Pick<ResolvedSource, 'identity'>, attrs: readonly string[]): string {
  return createHash('sha256')
    .update(JSON.stringify({ v: 1, resolved: true, source: source.identity, system: image.system, attrs: [...new Set(attrs)].sort() }))
    .digest('hex');
}

/**
 * The key of a multi-platform image's index (issue 13): a hash of its
 * platforms' build keys, in the configured order. It lives among the build
 * keys of the manifest cache (its own hash input, so it never collides with one).
 */
export function indexKey(platformKeys: readonly string[]): string {
  // Every warm pull of a multi-platform image asks for it: one hash per distinct list.
  return indexKeys.get(platformKeys.join(','), () => createHash('sha256').update(JSON.stringify({ v: 1, index: platformKeys })).digest('hex'));
}

const indexKeys = new BoundedMemo<string, string>(4096);
