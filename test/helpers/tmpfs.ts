/**
 * Small real filesystems for fault tests: a tmpfs of a given size mounted on
 * a directory (tests run as root, also inside the fresh roots' private mount
 * namespaces), and filling it so only a given number of bytes stay free.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, open, statfs } from 'node:fs/promises';
import { run } from './proc';

/** A mounted tmpfs. */
export interface Tmpfs {
  dir: string;
  /** Unmounts it (lazily, so a process still holding files there cannot block the test's end). */
  unmount(): Promise<void>;
}

/** Why a tmpfs cannot be mounted here (not root, no mount), or null when it can. Synchronous, for a suite's `skip`. */
export function tmpfsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const script = 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; r=$?; rmdir "$d"; exit $r';
  const probe = spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: 10_000 });
  return probe.status === 0 ? null : `mount -t tmpfs failed: ${String(probe.stderr).trim()}`;
}

/** Mounts a tmpfs of `size` (mount's syntax: `24m`) on `dir`, creating it. */
export async function mountTmpfs(dir: string, size: string): Promise<Tmpfs> {
  await mkdir(dir, { recursive: true });
  const r = await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  if (r.code !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
  return { dir, unmount: async () => void (await run('umount', ['-l', dir])) };
}

/** Bytes free on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Writes `file` until the filesystem has at most `leave` bytes free (0: until
 * writes fail with ENOSPC). Resolves with the bytes written.
 */
export async function fill(file: string, leave: number): Promise<number> {
  const fh = await open(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  try {
    for (;;) {
      const room = (await freeBytes(file.replace(/\/[^/]*$/, ''))) - leave;
      if (room <= 0) break;
      try {
        const { bytesWritten } = await fh.write(chunk, 0, Math.min(chunk.length, room));
        written += bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
  } finally {
    await fh.close();
  }
  return written;
}
