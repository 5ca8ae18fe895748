import { createHash } from 'node:crypto';
import { type FSWatcher, createReadStream, watch } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';

interface FileMemo {
  size: number;
  mtimeMs: number;
  ino: number;
  hash: string;
}

/** Options of {@link TreeFingerprinter}. */
export interface FingerprintOptions {
  /** Watch the tree's directories (inotify) and re-walk only after a change. Default true. */
  watch?: boolean;
  /** Without working watchers: re-walk at most this often (ms). Default 1000. */
  pollMs?: number;
  /** With watchers: re-walk anyway this often, in case an event was missed (ms). Default 30 000. */
  safetyRecheckMs?: number;
  /** Give up watching (and poll) for trees with more directories than this. Default 4096. */
  maxWatchedDirs?: number;
  /** Clock (tests). Default Date.now. */
  now?: () => number;
}

/** Names never part of a package set: VCS data, nix-build result links, dependencies. */
const SKIPPED = new Set(['.git', '.hg', 'node_modules', 'result']);
const skipped = (name: string) => SKIPPED.has(name) || name.startsWith('result-');

/**
 * Content fingerprint of a directory tree (a local package set): a sha256
 * over every file's relative path, executable bit and content hash, and every
 * symlink's target. Directory entries themselves, timestamps and owners do
 * not count, so touching a file (or copying the tree elsewhere) keeps the
 * fingerprint, and any edit changes it.
 *
 * Cheap to ask for: `current()` answers from memory until a directory
 * watcher reports a change (or, when watching is off or fails, at most once
 * per `pollMs`); a re-walk costs one lstat per entry and re-hashes only files
 * whose size, mtime or inode changed.
 */
export class TreeFingerprinter {
  private readonly memo = new Map<string, FileMemo>();
  private readonly watchers = new Map<string, FSWatcher>();
  private watching: boolean;
  private dirty = true;
  private value: string | undefined;
  private walkedAt = 0;
  private inflight: Promise<string> | undefined;
  private readonly now: () => number;
  private closed = false;

  constructor(
    private readonly root: string,
    private readonly opts: FingerprintOptions = {},
  ) {
    this.watching = opts.watch ?? true;
    this.now = opts.now ?? Date.now;
  }

  /** Whether directory watchers are active (false after falling back to polling). */
  get isWatching(): boolean {
    return this.watching && this.watchers.size > 0;
  }

  /** The fingerprint, re-computed only when something may have changed. */
  current(): Promise<string> {
    if (this.value !== undefined && !this.needsWalk()) return Promise.resolve(this.value);
    this.inflight ??= this.fingerprint().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Walks the tree now and returns its fingerprint (hex sha256). */
  async fingerprint(): Promise<string> {
    this.dirty = false; // events from now on mark the next walk as needed
    const h = createHash('sha256');
    const seenFiles = new Set<string>();
    const dirs: string[] = [];
    await this.walk('', h, seenFiles, dirs);
    for (const k of this.memo.keys()) if (!seenFiles.has(k)) this.memo.delete(k);
    this.syncWatchers(dirs);
    this.value = h.digest('hex');
    this.walkedAt = this.now();
    return this.value;
  }

  /** Stops the watchers. */
  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private needsWalk(): boolean {
    const age = this.now() - this.walkedAt;
    if (this.isWatching) return this.dirty || age >= (this.opts.safetyRecheckMs ?? 30_000);
    return age >= (this.opts.pollMs ?? 1000);
  }

  private async walk(rel: string, h: ReturnType<typeof createHash>, seen: Set<string>, dirs: string[]): Promise<void> {
    dirs.push(rel);
    const abs = path.join(this.root, rel);
    const entries = (await readdir(abs)).sort();
    for (const name of entries) {
      if (skipped(name)) continue;
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(abs, name);
      const st = await lstat(p).catch(() => null);
      if (!st) continue; // removed while walking; the watcher marks the tree dirty
      if (st.isDirectory()) {
        await this.walk(r, h, seen, dirs);
      } else if (st.isSymbolicLink()) {
        h.update(`l ${r}\0${await readlink(p)}\n`);
      } else if (st.isFile()) {
        seen.add(r);
        let m = this.memo.get(r);
        if (!m || m.size !== st.size || m.mtimeMs !== st.mtimeMs || m.ino !== st.ino) {
          m = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash: await hashFile(p) };
          this.memo.set(r, m);
        }
        h.update(`f ${r}\0${st.mode & 0o111 ? 'x' : '-'} ${m.hash}\n`);
      }
    }
  }

  private syncWatchers(dirs: string[]): void {
    if (!this.watching || this.closed) return;
    if (dirs.length > (this.opts.maxWatchedDirs ?? 4096)) {
      this.stopWatching();
      return;
    }
    const wanted = new Set(dirs);
    for (const [d, w] of this.watchers) {
      if (!wanted.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of dirs) {
      if (this.watchers.has(d)) continue;
      try {
        const w = watch(path.join(this.root, d), { persistent: false }, (_event, name) => {
          if (!name || !skipped(String(name))) this.dirty = true;
        });
        w.on('error', () => this.stopWatching());
        this.watchers.set(d, w);
      } catch {
        this.stopWatching(); // e.g. ENOSPC: too many inotify watches; poll instead
        return;
      }
    }
  }

  private stopWatching(): void {
    this.watching = false;
    this.dirty = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

async function hashFile(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest('hex');
}
