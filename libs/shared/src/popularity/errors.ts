/** Why a popularity run failed. */
export type PopcountErrorCode =
  /** The binary cache, channel or git repository could not be reached. */
  | 'UNREACHABLE'
  /** A server answered, but not with a store-paths list or narinfo files. */
  | 'BAD_RESPONSE'
  /** Nothing could be counted (empty list, every package missing). */
  | 'NOTHING_COUNTED'
  /** Nix failed to evaluate the package set. */
  | 'NIX_FAILED'
  /** The package source could not be pinned. */
  | 'SOURCE'
  /** The run took longer than NIXERY_POPCOUNT_TIMEOUT or was cancelled. */
  | 'TIMEOUT';

/** A failed popularity run; the message says what and where. The previous table stays. */
export class PopcountError extends Error {
  override readonly name = 'PopcountError';
  constructor(
    readonly code: PopcountErrorCode,
    message: string,
  ) {
    super(message);
  }
}
