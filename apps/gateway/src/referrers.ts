import { type Digest, type Descriptor, MediaTypes, RegistryError, type StorageDriver, parseReferrersIndex, readText, referrersIndex, referrersKey } from '@nixery/shared';
import type { Context } from 'koa';

/**
 * `GET /v2/<name>/referrers/<digest>` (OCI distribution spec 1.1): the
 * artifacts whose subject is `digest`, as an OCI image index, from the
 * referrers index the pipeline wrote beside them (`referrers/<hex>`). A
 * digest nothing refers to (or that was never built) is an empty index, as
 * the spec asks. `?artifactType=` keeps only that type and says so in
 * `OCI-Filters-Applied`.
 */
export async function serveReferrers(ctx: Context, storage: StorageDriver, digest: Digest): Promise<void> {
  const asked = ctx.query.artifactType;
  const artifactType = typeof asked === 'string' && asked !== '' ? asked : undefined;
  const text = await readText(storage, referrersKey(digest));
  let descriptors: Descriptor[] = [];
  if (text !== null) {
    const parsed = parseReferrersIndex(text);
    if (!parsed) throw new RegistryError('MANIFEST_INVALID', 'stored referrers index is unreadable', { digest });
    descriptors = parsed;
  }
  const index = referrersIndex(descriptors, artifactType);
  if (index.filtered) ctx.set('OCI-Filters-Applied', 'artifactType');
  ctx.status = 200;
  ctx.set('Content-Type', MediaTypes.ociIndex);
  ctx.body = Buffer.from(index.body);
}
