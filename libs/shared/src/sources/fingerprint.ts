import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';

interface FileMemo {
  size: number;
  mtimeMs: number;
  ino: number;
  hash: string;
}

/**
 * Content fingerprint of a directory tree (a local package set). Files are
 * re-hashed only when their size, mtime or inode changed, so a re-check costs
 * one stat per file; touching a file without changing it keeps the fingerprint.
 * Directories named .git, result and node_modules are skipped.
 */
export class TreeFingerprinter {
  private readonly memo = new Map<string, FileMemo>();

  constructor(private readonly root: string) {}

  /** The current fingerprint (hex sha256 of every path, type, mode and content). */
  async fingerprint(): Promise<string> {
    const h = createHash('sha256');
    const seen = new Set<string>();
    await this.walk('', h, seen);
    for (const k of this.memo.keys()) if (!seen.has(k)) this.memo.delete(k);
    return h.digest('hex');
  }

  private async walk(rel: string, h: ReturnType<typeof createHash>, seen: Set<string>): Promise<void> {
    const abs = path.join(this.root, rel);
    const entries = (await readdir(abs)).sort();
    for (const name of entries) {
      if (name === '.git' || name === 'result' || name === 'node_modules') continue;
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(this.root, r);
      const st = await lstat(p);
      if (st.isDirectory()) {
        h.update(`d ${r}\n`);
        await this.walk(r, h, seen);
      } else if (st.isSymbolicLink()) {
        h.update(`l ${r} ${await readlink(p)}\n`);
      } else if (st.isFile()) {
        seen.add(r);
        let m = this.memo.get(r);
        if (!m || m.size !== st.size || m.mtimeMs !== st.mtimeMs || m.ino !== st.ino) {
          m = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash: await hashFile(p) };
          this.memo.set(r, m);
        }
        h.update(`f ${r} ${st.mode & 0o111 ? 'x' : '-'} ${m.hash}\n`);
      }
    }
  }
}

async function hashFile(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest('hex');
}
