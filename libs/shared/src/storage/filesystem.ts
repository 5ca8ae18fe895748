import { randomBytes } from 'node:crypto';
import { close, constants as fsConstants, fstat, open as openFd } from 'node:fs';
import { access, lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ByteCounter } from '../core/counters';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { ByteRange, ObjectInfo, ObjectReader, StorageDriver, StorageKey } from './driver';
import { InvalidStorageKeyError, checkedDriver } from './checked';
import { FileRangeStream, sendFileRange } from './file-stream';

const openAsync = promisify(openFd);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);

/** True for a Node fs error with the given code (ENOENT, ...). */
function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** The directories keys live in (see keys.ts). */
const KEY_DIRS = ['staging', 'layers', 'manifests', 'referrers'] as const;
/** The reader of an open file: its stream is made when asked for, so `sendTo` can own the descriptor instead. */
function fileReader(fd: number, start: number, end: number, size: number): ObjectReader {
  let claimed = false;
  const claim = <T>(use: () => T): T => {
    if (claimed) throw new Error('an object reader is read once: through its stream or sendTo');
    claimed = true;
    return use();
  };
  let stream: Readable | undefined;
  return {
    size,
    get stream() {
      stream ??= claim(() => new FileRangeStream(fd, start, end));
      return stream;
    },
    sendTo: (dest) => claim(() => sendFileRange(fd, start, end, dest)),
  };
}

/** A temporary file of `write`, beside its target. */
const PARTIAL = /\.partial-[0-9a-f]+$/;

/**
 * A storage driver keeping each object as a plain file at `root/<key>`
 * (e.g. `root/layers/<hex>`), for single-node setups.
 *
 * - `write` streams into a temporary file beside the target and renames it
 *   into place, so a key never shows a half-written file.
 * - `move` is a `rename(2)`: atomic, and `root` is one filesystem.
 * - Content types are not stored: `stat` omits `contentType`.
 * - No `redirectUrl`: the gateway streams the file itself (with ranges).
 * - `removeStaging` removes old files under `staging/` and old
 *   `*.partial-*` files of interrupted writes beside any key.
 * - `list` reads one key directory (`updated` is the file's mtime, which a
 *   `move` keeps: the time the bytes were written); partial files are skipped.
 *
 * `root` need not exist yet: it and the key directories are created on demand.
 */
export function createFilesystemDriver(root: string): StorageDriver {
  const base = path.resolve(root);

  /** The absolute file path of `key` (its shape is checked by checkedDriver), after checking that it stays under `base`. */
  function pathOf(key: StorageKey): string {
    const p = path.resolve(base, key);
    if (!p.startsWith(base + path.sep)) throw new InvalidStorageKeyError(key);
    return p;
  }

  return checkedDriver({
    name: 'filesystem',

    async write(key, source: Readable) {
      const target = pathOf(key);
      await mkdir(path.dirname(target), { recursive: true });
      const tmp = `${target}.partial-${randomBytes(6).toString('hex')}`;
      const counter = new ByteCounter();
      const fh = await open(tmp, 'wx');
      try {
        await pipeline(source, counter, fh.createWriteStream());
        await rename(tmp, target);
      } catch (err) {
        await fh.close().catch(() => undefined);
        await rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
      return { size: counter.bytes };
    },

    async read(key, range?: ByteRange): Promise<ObjectReader | null> {
      const p = pathOf(key);
      let fd: number;
      try {
        fd = await openAsync(p, 'r');
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return null;
        throw err;
      }
      try {
        const st = await fstatAsync(fd);
        if (!st.isFile()) {
          await closeAsync(fd);
          return null;
        }
        // The open descriptor keeps the bytes readable even if the key is moved or deleted meanwhile.
        // Plain descriptors and callback reads: Node's FileHandle stream was half as fast (file-stream.ts).
        return fileReader(fd, range?.start ?? 0, range ? range.end : st.size - 1, st.size);
      } catch (err) {
        await closeAsync(fd).catch(() => undefined);
        throw err;
      }
    },

    async stat(key): Promise<ObjectInfo | null> {
      const p = pathOf(key);
      try {
        const st = await stat(p);
        return st.isFile() ? { size: st.size } : null;
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return null;
        throw err;
      }
    },

    async move(from, to) {
      const src = pathOf(from);
      const dst = pathOf(to);
      await mkdir(path.dirname(dst), { recursive: true });
      await rename(src, dst);
    },

    async delete(key) {
      await rm(pathOf(key), { force: true });
    },

    async removeStaging(olderThan) {
      let removed = 0;
      for (const dir of KEY_DIRS) {
        let names: string[];
        try {
          names = await readdir(path.join(base, dir));
        } catch (err) {
          if (isErrno(err, 'ENOENT')) continue;
          throw err;
        }
        for (const n of names) {
          // Under a digest directory only the partial files of interrupted writes are leftovers.
          if (dir !== 'staging' && !PARTIAL.test(n)) continue;
          const p = path.join(base, dir, n);
          const st = await lstat(p).catch(() => null);
          if (!st?.isFile() || st.mtimeMs >= olderThan.getTime()) continue;
          await rm(p, { force: true });
          removed++;
        }
      }
      return { removed };
    },

    async *list(prefix) {
      const dir = prefix.slice(0, -1);
      let names: string[];
      try {
        names = await readdir(path.join(base, dir));
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return;
        throw err;
      }
      for (const n of names) {
        if (PARTIAL.test(n)) continue;
        const st = await lstat(path.join(base, dir, n)).catch(() => null);
        if (st?.isFile()) yield { key: `${prefix}${n}` as StorageKey, size: st.size, updated: st.mtime };
      }
    },

    async ping() {
      await mkdir(base, { recursive: true });
      await access(base, fsConstants.R_OK | fsConstants.W_OK);
    },
  });
}
