import { createHash } from 'node:crypto';
import type { ImageSpec } from '../protocol/image-spec';
import type { ResolvedSource } from '../sources/resolver';

/**
 * The build key: a hash of everything that decides an image's contents (the
 * pinned source identity, the system and the normalised package list). Equal
 * keys mean the same image; the key is the BullMQ job id and the manifest cache key.
 */
export function buildKey(image: ImageSpec, source: ResolvedSource): string {
  return createHash('sha256')
    .update(JSON.stringify({ v: 1, source: source.identity, system: image.system, packages: image.packages }))
    .digest('hex');
}
