import type { PackageSourceConfig } from '../config';
import { RegistryError } from '../errors';
import type { PackageSourceArgs } from '../nix';
import { TreeFingerprinter } from './fingerprint';
import { listGitRefs, resolveGitRef } from './git';

/**
 * A package source pinned to an immutable identity for one request. Images
 * are built and cached by `identity`, so a moving source (branch, channel,
 * edited directory) gives new images and a fixed one is always a cache hit.
 */
export interface ResolvedSource {
  /** Stable cache identity, e.g. "git:<url>@<commit>", "path:<dir>#<fingerprint>". */
  identity: string;
  /** Human-facing revision (commit, channel revision, or content fingerprint). */
  revision: string;
  /** What Nix is told to load. */
  nix: PackageSourceArgs;
}

interface Cached<T> {
  value: T;
  expires: number;
}

/** Resolves the configured package source for a tag, caching moving refs for `ttlSeconds`. */
export class SourceResolver {
  private readonly cache = new Map<string, Cached<ResolvedSource>>();
  private readonly fingerprinter: TreeFingerprinter | undefined;
  private readonly pathCheckMs = 1000;

  constructor(
    private readonly source: PackageSourceConfig,
    private readonly opts: { ttlSeconds: number; timeoutMs: number; fetch?: typeof fetch },
  ) {
    this.fingerprinter = source.type === 'path' ? new TreeFingerprinter(source.path) : undefined;
  }

  /** A short description of the source, for the logs and the web page. */
  describe(): string {
    const s = this.source;
    if (s.type === 'git') return `git repository ${s.url}`;
    if (s.type === 'channel') return `nixpkgs channel ${s.channel}`;
    return s.bundled ? `bundled package set (${s.path})` : `local package set ${s.path}`;
  }

  /** Pins the source for `tag`. Throws RegistryError MANIFEST_UNKNOWN for an unknown git ref. */
  async resolve(tag: string): Promise<ResolvedSource> {
    const s = this.source;
    const cacheKey = s.type === 'git' ? `git:${tag}` : s.type;
    const hit = this.cache.get(cacheKey);
    if (hit && hit.expires > Date.now()) return hit.value;
    const value = await this.resolveUncached(tag);
    const ttl = s.type === 'path' ? this.pathCheckMs : this.opts.ttlSeconds * 1000;
    if (ttl > 0) this.cache.set(cacheKey, { value, expires: Date.now() + ttl });
    return value;
  }

  /** Tags a client can pull: branches and tags of a git source, otherwise just `latest`. */
  async tags(): Promise<string[]> {
    if (this.source.type !== 'git') return ['latest'];
    return ['latest', ...(await listGitRefs(this.source.url, this.opts.timeoutMs)).filter((t) => t !== 'latest')];
  }

  private async resolveUncached(tag: string): Promise<ResolvedSource> {
    const s = this.source;
    switch (s.type) {
      case 'path': {
        const fp = await this.fingerprinter!.fingerprint();
        return { identity: `path:${s.path}#${fp}`, revision: fp.slice(0, 16), nix: { type: 'path', path: s.path } };
      }
      case 'git': {
        const ref = await resolveGitRef(s.url, tag, this.opts.timeoutMs);
        if (!ref) throw new RegistryError('MANIFEST_UNKNOWN', `no branch, tag or commit named "${tag}" in the package repository`);
        return {
          identity: `git:${s.url}@${ref.commit}`,
          revision: ref.commit,
          nix: { type: 'git', url: s.url, rev: ref.commit, ...(ref.ref && ref.ref !== 'HEAD' ? { ref: ref.ref } : {}) },
        };
      }
      case 'channel': {
        const rev = await this.channelRevision(s);
        return {
          identity: `nixpkgs:${rev}`,
          revision: rev,
          nix: { type: 'nixpkgs', url: `${s.tarballBaseUrl}/${rev}.tar.gz` },
        };
      }
    }
  }

  private async channelRevision(s: Extract<PackageSourceConfig, { type: 'channel' }>): Promise<string> {
    if (/^[0-9a-f]{40}$/.test(s.channel)) return s.channel;
    const f = this.opts.fetch ?? fetch;
    const url = `${s.channelBaseUrl}/${encodeURIComponent(s.channel)}/git-revision`;
    const res = await f(url, { signal: AbortSignal.timeout(this.opts.timeoutMs) }).catch((e: unknown) => {
      throw new RegistryError('UNAVAILABLE', `cannot resolve channel ${s.channel}: ${String(e)}`);
    });
    const text = (await res.text()).trim();
    if (!res.ok || !/^[0-9a-f]{40}$/.test(text)) {
      throw new RegistryError('UNAVAILABLE', `cannot resolve channel ${s.channel}: ${url} answered ${res.status}`);
    }
    return text;
  }
}
