import type { ImageSpec, NixSystem } from './image-spec';
import type { ResolvedSource } from './sources/resolver';

/** Name of the build queue for one Nix system: jobs go only to workers that build for it. */
export function buildQueueName(system: NixSystem): string {
  return `build-${system}`;
}

/** Name of the popularity refresh queue. */
export const POPCOUNT_QUEUE = 'popcount';

/** What a build job carries. Plain JSON. */
export interface BuildJobData {
  buildKey: string;
  image: ImageSpec;
  source: ResolvedSource;
}

/** What a finished build job returns. */
export interface BuildJobResult {
  manifestDigest: string;
  layers: number;
  /** Compressed bytes of all layers. */
  size: number;
  /** Layers packed by this build (the others came from the layer cache). */
  packedLayers: number;
  durationMs: number;
}

/** Progress a build job reports (BullMQ job progress). */
export interface BuildProgress {
  stage: 'queued' | 'evaluating' | 'building' | 'layering' | 'packing' | 'uploading' | 'done';
  /** Layers packed so far and in all (while packing). */
  packed?: number;
  total?: number;
}
