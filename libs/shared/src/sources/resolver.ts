import { Failed } from '../core/failure';
import type { Logger } from '../infra/logger';
import type { PackageSourceArgs } from '../nix';
import { fetchChannelRevision } from './channel';
import { TreeFingerprinter } from './fingerprint';
import { type GitRefs, isCommit, listGitRefs, resolveTag, tagNames } from './git';
import { RefreshingValue, redactUrl } from './refresh';

/**
 * Where packages come from. Exactly one is configured, as in Nixery:
 * NIXERY_PKGS_REPO (git), NIXERY_PKGS_PATH (local path), NIXERY_CHANNEL
 * (nixpkgs channel or commit); none of them -> the bundled package set.
 */
export type PackageSourceConfig =
  | { type: 'git'; url: string }
  | { type: 'path'; path: string; bundled: boolean }
  | { type: 'channel'; channel: string; channelBaseUrl: string; tarballBaseUrl: string };

/**
 * A package source pinned to an immutable identity for one request. Images
 * are built and cached by `identity`, so a moving source (branch, channel,
 * edited directory) gives new images and a fixed one is always a cache hit.
 */
export interface ResolvedSource {
  /** Stable cache identity, e.g. "git:<url>@<commit>", "path:<dir>#<fingerprint>", "nixpkgs:<rev>". */
  identity: string;
  /** Human-facing revision (commit, channel revision, or content fingerprint); the image's org.opencontainers.image.revision. */
  revision: string;
  /** What Nix is told to load. */
  nix: PackageSourceArgs;
}

/** Options of {@link SourceResolver}. */
export interface ResolverOptions {
  /** Seconds a resolved git ref list or channel revision is reused (NIXERY_RESOLVE_TTL). */
  ttlSeconds: number;
  /** Seconds the last known revision is still used while resolution fails (NIXERY_RESOLVE_FALLBACK_TTL). */
  fallbackSeconds: number;
  /** Time one `git ls-remote` or channel request may take (ms). */
  timeoutMs: number;
  /** Where resolution failures and fallbacks are reported. */
  log?: Logger;
  /** Local paths: watch the directory tree for changes (default true) instead of polling every second. */
  watchPaths?: boolean;
  /** fetch implementation (default the global one). */
  fetch?: typeof fetch;
}

/**
 * Pins the configured package source per request:
 * - git: one `git ls-remote` per TTL lists HEAD, branches and tags; `latest`
 *   -> the default branch, a 40-hex tag -> that commit, else the branch or tag;
 * - path (and the bundled set): a content fingerprint, re-computed only when
 *   the tree changed;
 * - channel: `<channel URL>/<channel>/git-revision` per TTL, a 40-hex channel as is.
 * A moving source that cannot be resolved falls back to its last known value
 * for `fallbackSeconds` (logged as a warning), then fails with 503 UNAVAILABLE.
 * Answers come from memory while fresh: no I/O on a warm pull.
 */
export class SourceResolver {
  private readonly gitRefs: RefreshingValue<GitRefs> | undefined;
  private readonly channelRev: RefreshingValue<string> | undefined;
  private readonly fingerprinter: TreeFingerprinter | undefined;
  /** Resolved sources by identity and ref, so equal pins share one object. */
  private readonly pinned = new Map<string, ResolvedSource>();
  /** The path source's last pin (the warm path's). */
  private lastPath: { fingerprint: string; source: ResolvedSource } | undefined;

  constructor(
    private readonly source: PackageSourceConfig,
    private readonly opts: ResolverOptions,
  ) {
    const refresh = (what: string) => ({
      ttlMs: opts.ttlSeconds * 1000,
      fallbackMs: opts.fallbackSeconds * 1000,
      what,
      onFallback: (i: { error: string; staleForMs: number; value: unknown }) =>
        opts.log?.warn(
          { source: what, error: i.error, staleForSeconds: Math.round(i.staleForMs / 1000), fallbackSeconds: opts.fallbackSeconds },
          'package source resolution failed; using the last known revision',
        ),
      onFailure: (i: { error: string }) =>
        opts.log?.error({ source: what, error: i.error }, 'package source resolution failed and no known revision is recent enough'),
    });
    if (source.type === 'git') {
      this.gitRefs = new RefreshingValue(() => listGitRefs(source.url, opts.timeoutMs), refresh(this.describe()));
    } else if (source.type === 'channel' && !isCommit(source.channel)) {
      const f = opts.fetch ?? fetch;
      this.channelRev = new RefreshingValue(
        () => fetchChannelRevision(source.channelBaseUrl, source.channel, opts.timeoutMs, f),
        refresh(this.describe()),
      );
    } else if (source.type === 'path') {
      this.fingerprinter = new TreeFingerprinter(source.path, { watch: opts.watchPaths ?? true });
    }
  }

  /** True when image tags name refs of a git repository (otherwise every tag is latest). */
  get tagsAreGitRefs(): boolean {
    return this.source.type === 'git';
  }

  /** A short description of the source, for the logs and the web page (credentials removed). */
  describe(): string {
    const s = this.source;
    if (s.type === 'git') return /^(\/|\.|~|file:)/i.test(s.url) ? 'local git repository' : `git repository ${redactUrl(s.url)}`;
    if (s.type === 'channel') return `nixpkgs channel ${s.channel}`;
    // Never the path (issue 12): pages and /api/status show this; the revision (fingerprint) tells sets apart.
    return s.bundled ? 'bundled package set' : 'local package set';
  }

  /**
   * Pins the source for image tag `tag`. Throws an `unknown_ref` failure for
   * a git ref that does not exist, `source_unavailable` when the source cannot
   * be resolved (and no recent revision is known).
   */
  async resolve(tag: string): Promise<ResolvedSource> {
    const s = this.source;
    switch (s.type) {
      case 'path': {
        const fp = await this.fingerprinter!.current().catch((e: unknown) => {
          // Clients see this (503 detail, /api/status): the errno code, never the path (issue 12).
          const code = (e as NodeJS.ErrnoException | null)?.code;
          throw new Failed({ kind: 'source_unavailable', source: this.describe(), error: `cannot read the package set${code ? ` (${code})` : ''}` });
        });
        // A warm pull asks again and again for the same fingerprint: no identity string is built for it.
        if (this.lastPath?.fingerprint === fp) return this.lastPath.source;
        const source = this.pin(`path:${s.path}#${fp}`, '', () => ({ revision: fp.slice(0, 16), nix: { type: 'path', path: s.path } }));
        this.lastPath = { fingerprint: fp, source };
        return source;
      }
      case 'git': {
        const ref = isCommit(tag) ? { commit: tag } : resolveTag(await this.gitRefs!.get(), tag);
        if (!ref) {
          throw new Failed({ kind: 'unknown_ref', ref: tag });
        }
        return this.pin(`git:${s.url}@${ref.commit}`, ref.ref ?? '', () => ({
          revision: ref.commit,
          nix: { type: 'git', url: s.url, rev: ref.commit, ...(ref.ref ? { ref: ref.ref } : {}) },
        }));
      }
      case 'channel': {
        const rev = this.channelRev ? await this.channelRev.get() : s.channel;
        return this.pin(`nixpkgs:${rev}`, '', () => ({
          revision: rev,
          nix: { type: 'nixpkgs', url: `${s.tarballBaseUrl}/${rev}.tar.gz` },
        }));
      }
    }
  }

  /** Tags a client can pull, sorted: `latest` plus the branches and tags of a git source; otherwise just `latest`. */
  async tags(): Promise<string[]> {
    if (!this.gitRefs) return ['latest'];
    return tagNames(await this.gitRefs.get());
  }

  /** Stops watching local paths. */
  close(): void {
    this.fingerprinter?.close();
  }

  /** One object per identity and ref (a warm pull allocates nothing); bounded, oldest dropped first. */
  private pin(identity: string, ref: string, make: () => Omit<ResolvedSource, 'identity'>): ResolvedSource {
    const key = `${identity}|${ref}`;
    let r = this.pinned.get(key);
    if (!r) {
      r = { identity, ...make() };
      if (this.pinned.size >= 1000) this.pinned.delete(this.pinned.keys().next().value!);
      this.pinned.set(key, r);
    }
    return r;
  }
}
