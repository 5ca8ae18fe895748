/** The layering algorithm's vocabulary: its options and defaults, its output, and why it refuses input. */
import type { Popularity } from '../core/graph';

/** One layer of the closure. */
export interface Layer {
  /** Store paths in the layer, sorted (code-unit order). */
  contents: string[];
  /** How much the layer is worth keeping apart: popularity × size (see the module comment). */
  mergeRating: number;
}

/** Which size a path is judged by, for the heavy test and the merge rating. */
export type SizeMetric = 'closure' | 'nar';

/** Options of {@link groupLayers}. */
export interface LayeringOptions {
  /** Most layers the closure may take: an integer >= 1. See "Layer budget" above. */
  budget: number;
  /** Reference counts keyed by store path name without hash (`storePathName`); missing names count 1. */
  popularity: Popularity;
  /** A path whose popularity is at least this gets its own layer. Default 100 (Nixery). */
  popularityThreshold?: number;
  /** A path whose size (see `sizeMetric`) is above this many bytes gets its own layer. Default 100 MB (10^8, Nixery). */
  sizeThreshold?: number;
  /** `'closure'` (default, Nixery: Nix's closureSize) or `'nar'` (the path's own NAR size). */
  sizeMetric?: SizeMetric;
  /**
   * Name prefixes given popularity {@link BOOSTED_POPULARITY} whatever the popularity data says.
   * Default `['nss-cacert', 'iana-etc']` (Nixery adds them to every image).
   */
  boostedPrefixes?: readonly string[];
}

/** Default `popularityThreshold`. */
export const DEFAULT_POPULARITY_THRESHOLD = 100;
/** Default `sizeThreshold`: 100 MB. */
export const DEFAULT_SIZE_THRESHOLD = 100_000_000;
/** Popularity of boosted paths (glibc has about 300k references; these need more). */
export const BOOSTED_POPULARITY = 500_000;
/** Default `boostedPrefixes`. */
export const DEFAULT_BOOSTED_PREFIXES: readonly string[] = ['nss-cacert', 'iana-etc'];
/**
 * Nixery's budget for the closure's layers: 94. The image's `layerBudget`
 * (NIXERY_LAYER_BUDGET) counts the symlink layer too, so its default is this + 1.
 */
export const NIXERY_CLOSURE_BUDGET = 94;

/** Why {@link groupLayers} refused its input. */
export type LayeringErrorCode =
  /** `budget` is not an integer >= 1. */
  | 'INVALID_BUDGET'
  /** A top-level path or a reference is not in `graph.paths`: the closure is incomplete. */
  | 'MISSING_PATH';

/** Thrown by {@link groupLayers} on input it cannot lay out. */
export class LayeringInputError extends Error {
  override readonly name = 'LayeringInputError';
  constructor(
    readonly code: LayeringErrorCode,
    message: string,
    /** The missing store path, for `MISSING_PATH`. */
    readonly path?: string,
    /** The path that references it, for `MISSING_PATH` (absent when it is a top-level path). */
    readonly referrer?: string,
  ) {
    super(message);
  }
}
