import type { PublishedImage } from '../protocol/image-documents';
import type { ImageSpec, NixSystem } from '../protocol/image-spec';
import type { ResolvedSource } from '../sources/resolver';
import type { EncodedFailure } from './failure-codec';

/** Name of the build queue for one Nix system: jobs go only to workers that build for it. */
export function buildQueueName(system: NixSystem): string {
  return `build-${system}`;
}

/** Name of the popularity refresh queue. */
export const POPCOUNT_QUEUE = 'popcount';

/** Name of the storage collection queue (issue 11). */
export const GC_QUEUE = 'gc';

/** What a build job carries. Plain JSON. */
export interface BuildJobData {
  buildKey: string;
  image: ImageSpec;
  source: ResolvedSource;
}

/** Facts about a finished build, for logs and the web page. */
export interface BuildStats {
  /** Layers of the image, the symlink layer included. */
  layers: number;
  /** Compressed bytes of all layers. */
  layerBytes: number;
  /** Layers packed by this build (the others came from the layer cache). */
  packedLayers: number;
  durationMs: number;
}

/**
 * What a build job returns, in one piece: the published image the gateway
 * answers with, or the failure (encoded with its code) that ended the build.
 * Only failures that retrying may fix are thrown instead, while attempts are
 * left (BullMQ then retries the job); the last attempt returns its failure.
 */
export type BuildJobResult = { ok: true; image: PublishedImage; stats: BuildStats } | { ok: false; failure: EncodedFailure };

/** Progress a build job reports (BullMQ job progress). */
export interface BuildProgress {
  stage: 'queued' | 'evaluating' | 'building' | 'layering' | 'packing' | 'uploading' | 'done';
  /** Layers packed so far and in all (while packing). */
  packed?: number;
  total?: number;
}
