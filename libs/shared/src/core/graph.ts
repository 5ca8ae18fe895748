/** One store path of a runtime closure, as Nix reports it. */
export interface StorePathInfo {
  /** Absolute store path, e.g. /nix/store/<hash>-hello-2.12. */
  path: string;
  /** NAR size in bytes. */
  narSize: number;
  /** Store paths this one references (may include itself). */
  references: string[];
  /** The NAR hash as Nix prints it (`sha256:<base32>`, or SRI in newer Nix); absent in fixtures that do not give one. */
  narHash?: string;
}

/** The runtime closure of an image: the top-level package paths and every path they need. */
export interface ClosureGraph {
  /** Store paths of the requested packages (the image's top level). */
  roots: string[];
  /** Every path of the closure, keyed by store path. */
  paths: Record<string, StorePathInfo>;
}

/** Popularity: for a package name without its store hash, how many packages reference it. */
export type Popularity = Record<string, number>;
