import type { Credentials } from './credentials';
import type { LocalImage } from './image';
import type { Progress } from './progress';
import { RegistryAuth } from './registry-auth';
import { RegistryClient, type PushTarget } from './registry-client';

/** What a push did, in blobs and bytes. */
export interface PushReport {
  digest: string;
  uploaded: { blobs: number; bytes: number };
  skipped: { blobs: number; bytes: number };
}

/**
 * Pushes `image` to `target`: each layer and the config unless the registry
 * has it already (HEAD first; nix2container's cheap re-push), then the
 * manifest under the target's tag. Blobs go one at a time, in manifest
 * order, so a failure names the first blob the registry refused.
 */
export async function pushImage(
  image: LocalImage,
  target: PushTarget,
  opts: { creds: Credentials | undefined; chunkSize: number; progress: Progress },
): Promise<PushReport> {
  const auth = new RegistryAuth(opts.creds, `repository:${target.repo}:pull,push`);
  const client = new RegistryClient(target, auth, opts.chunkSize);
  const report: PushReport = { digest: image.manifest.digest, uploaded: { blobs: 0, bytes: 0 }, skipped: { blobs: 0, bytes: 0 } };
  for (const blob of [...image.layers, image.config]) {
    const outcome = await client.pushBlob(blob);
    const tally = report[outcome];
    tally.blobs++;
    tally.bytes += blob.size;
    opts.progress.line(`${outcome === 'skipped' ? 'skipped (the registry has it)' : 'uploaded'} ${blob.digest} (${blob.size} bytes)`);
  }
  report.digest = await client.putManifest(image.manifest);
  return report;
}
