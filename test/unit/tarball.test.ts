import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { extract } from 'tar-stream';
import {
  compressAndHash,
  FIXED_MTIME,
  packStorePaths,
  packSymlinkLayer,
  TarballError,
} from '../../libs/shared/src/tarball';

// ---------------------------------------------------------------- fixtures

const HELLO = '/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12';
const LIBS = '/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-libs';
const SCRIPT = '/nix/store/2ccccccccccccccccccccccccccccccc-script.sh';
const ALIAS = '/nix/store/3ddddddddddddddddddddddddddddddd-alias';
const LONG_DIR = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
const LONG_FILE = `${'f'.repeat(99)}.txt`;
const BIG_SIZE = 300 * 1024 + 17;

/** A byte pattern that changes with the offset, so misplaced chunks show up. */
function bigContent(): Buffer {
  const b = Buffer.alloc(BIG_SIZE);
  for (let i = 0; i < BIG_SIZE; i++) b[i] = (i * 31 + (i >> 9)) & 0xff;
  return b;
}

type Spec =
  | { kind: 'file'; path: string; mode: number; content: string | Buffer }
  | { kind: 'dir'; path: string; mode: number }
  | { kind: 'symlink'; path: string; target: string };

/** The store tree used by most tests, as logical paths under a root. */
function storeSpec(): Spec[] {
  return [
    { kind: 'dir', path: HELLO, mode: 0o555 },
    { kind: 'dir', path: `${HELLO}/bin`, mode: 0o555 },
    { kind: 'file', path: `${HELLO}/bin/hello`, mode: 0o555, content: '#!/bin/sh\necho hello\n' },
    { kind: 'symlink', path: `${HELLO}/bin/hi`, target: 'hello' },
    { kind: 'dir', path: `${HELLO}/share`, mode: 0o555 },
    { kind: 'dir', path: `${HELLO}/share/empty`, mode: 0o555 },
    { kind: 'dir', path: `${HELLO}/share/doc`, mode: 0o755 },
    { kind: 'file', path: `${HELLO}/share/doc/README`, mode: 0o444, content: 'read me\n' },
    { kind: 'file', path: `${HELLO}/share/doc/README.md`, mode: 0o644, content: '# read me\n' },
    { kind: 'file', path: `${HELLO}/share/doc-index`, mode: 0o444, content: 'index\n' },
    { kind: 'file', path: `${HELLO}/share/big.bin`, mode: 0o444, content: bigContent() },
    { kind: 'file', path: `${HELLO}/share/empty-file`, mode: 0o444, content: '' },
    { kind: 'dir', path: `${HELLO}/a`, mode: 0o555 },
    { kind: 'dir', path: `${HELLO}/a/b`, mode: 0o555 },
    { kind: 'dir', path: `${HELLO}/a/b/c`, mode: 0o555 },
    { kind: 'file', path: `${HELLO}/a/b/c/deep.txt`, mode: 0o444, content: 'deep\n' },
    { kind: 'dir', path: `${HELLO}/${LONG_DIR.split('/')[0]}`, mode: 0o555 },
    { kind: 'dir', path: `${HELLO}/${LONG_DIR}`, mode: 0o555 },
    { kind: 'file', path: `${HELLO}/${LONG_DIR}/${LONG_FILE}`, mode: 0o444, content: 'long\n' },
    { kind: 'symlink', path: `${HELLO}/share/lib-link`, target: `${LIBS}/lib/${'x'.repeat(120)}.so` },
    { kind: 'dir', path: LIBS, mode: 0o555 },
    { kind: 'dir', path: `${LIBS}/lib`, mode: 0o555 },
    { kind: 'file', path: `${LIBS}/lib/libfoo.so.1`, mode: 0o555, content: 'ELF?\n' },
    { kind: 'symlink', path: `${LIBS}/lib/libfoo.so`, target: 'libfoo.so.1' },
    { kind: 'file', path: SCRIPT, mode: 0o555, content: '#!/bin/sh\n' },
    { kind: 'symlink', path: ALIAS, target: HELLO },
  ];
}

/**
 * Creates `spec` under `root` in the given order. Directories get their final
 * mode after everything is written, so creation order never matters.
 */
async function makeTree(root: string, spec: Spec[], reverse = false): Promise<void> {
  const items = reverse ? [...spec].reverse() : spec;
  for (const s of items) {
    const p = join(root, s.path);
    if (s.kind === 'dir') await mkdir(p, { recursive: true });
    else {
      await mkdir(join(p, '..'), { recursive: true });
      if (s.kind === 'file') await writeFile(p, s.content);
      else await symlink(s.target, p);
    }
  }
  for (const s of items) {
    if (s.kind !== 'symlink') await chmod(join(root, s.path), s.mode);
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

interface ReadEntry {
  name: string;
  type: string;
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  linkname: string | null;
  size: number;
  sha256: string;
}

/** Reads a tar back with tar-stream's extractor. */
async function readTar(tar: Buffer): Promise<ReadEntry[]> {
  const out: ReadEntry[] = [];
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const h = createHash('sha256');
      let size = 0;
      for await (const chunk of entry) {
        h.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
      const hd = entry.header;
      out.push({
        name: hd.name,
        type: hd.type,
        mode: hd.mode,
        mtime: hd.mtime.getTime(),
        uid: hd.uid,
        gid: hd.gid,
        uname: hd.uname,
        gname: hd.gname,
        linkname: hd.linkname ?? null,
        size,
        sha256: h.digest('hex'),
      });
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

const byName = (entries: ReadEntry[]): Map<string, ReadEntry> => new Map(entries.map((e) => [e.name, e]));
const sha256Hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

async function gzipped(tar: Readable): Promise<{ gz: Buffer; diffId: string; uncompressedSize: number }> {
  const { stream, done } = compressAndHash(tar);
  const gz = await collect(stream);
  const info = await done;
  return { gz, diffId: info.diffId, uncompressedSize: info.uncompressedSize };
}

const PATHS = [LIBS, HELLO, SCRIPT, ALIAS]; // deliberately unsorted

let scratch: string;
let rootA: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tarball-test-'));
  rootA = join(scratch, 'a');
  await makeTree(rootA, storeSpec());
});
after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------- packStorePaths

describe('packStorePaths', () => {
  test('packing twice gives identical tar, gzip and digests', async () => {
    const t1 = await collect(packStorePaths(PATHS, { root: rootA }));
    const t2 = await collect(packStorePaths(PATHS, { root: rootA }));
    assert.ok(t1.length > BIG_SIZE);
    assert.ok(t1.equals(t2), 'tar bytes differ between two runs');

    const g1 = await gzipped(packStorePaths(PATHS, { root: rootA }));
    const g2 = await gzipped(packStorePaths(PATHS, { root: rootA }));
    assert.ok(g1.gz.equals(g2.gz), 'gzip bytes differ between two runs');
    assert.equal(g1.diffId, `sha256:${sha256Hex(t1)}`, 'diffId is the sha256 of the uncompressed tar');
    assert.equal(g1.uncompressedSize, t1.length);
    assert.ok(g1.gz.length < t1.length);
    // gzip header: magic, deflate, no flags, mtime 0
    assert.deepEqual([...g1.gz.subarray(0, 8)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
  });

  test('mtime changes (touch) do not change the bytes', async () => {
    const before = await collect(packStorePaths(PATHS, { root: rootA }));
    const now = new Date();
    for (const s of storeSpec()) {
      if (s.kind !== 'symlink') await utimes(join(rootA, s.path), now, now);
    }
    execFileSync('touch', ['-h', join(rootA, HELLO, 'bin/hi'), join(rootA, ALIAS)]);
    const afterTouch = await collect(packStorePaths(PATHS, { root: rootA }));
    assert.ok(before.equals(afterTouch), 'tar changed after touching files');
  });

  test('the same tree made elsewhere, in another order, packs to the same bytes', async () => {
    const rootB = join(scratch, 'b-other-place');
    await makeTree(rootB, storeSpec(), true);
    const a = await gzipped(packStorePaths(PATHS, { root: rootA }));
    const b = await gzipped(packStorePaths([...PATHS].reverse(), { root: rootB }));
    assert.ok(a.gz.equals(b.gz), 'gzip bytes differ between the two trees');
    assert.equal(a.diffId, b.diffId);
  });

  test('any absolute directory can be packed without a root; names drop the leading slash', async () => {
    const dir = join(rootA, HELLO);
    const entries = await readTar(await collect(packStorePaths([dir])));
    const parts = dir.split('/').slice(1);
    const parents = parts.slice(0, -1).map((_, i) => `${parts.slice(0, i + 1).join('/')}/`);
    assert.deepEqual(
      entries.slice(0, parents.length).map((e) => e.name),
      parents,
    );
    assert.equal(entries[parents.length]?.name, `${dir.slice(1)}/`);
    assert.ok(entries.some((e) => e.name === `${dir.slice(1)}/bin/hello`));
  });

  test('entries are sorted by name in byte order and every parent comes first', async () => {
    const entries = await readTar(await collect(packStorePaths(PATHS, { root: rootA })));
    const names = entries.map((e) => e.name);
    assert.deepEqual(names.slice(0, 2), ['nix/', 'nix/store/']);
    const sorted = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(names, sorted);
    assert.equal(new Set(names).size, names.length, 'no duplicates');
    const seen = new Set<string>();
    for (const n of names) {
      const parent = n.replace(/[^/]+\/?$/, '');
      if (parent !== '') assert.ok(seen.has(parent), `${n} comes before its parent ${parent}`);
      seen.add(n);
    }
    // doc-index sorts between doc/ subtree order rules: "doc-index" < "doc/" because '-' < '/'
    const i = (n: string): number => names.indexOf(n);
    const h = HELLO.slice(1);
    assert.ok(i(`${h}/share/doc-index`) < i(`${h}/share/doc/`));
    assert.ok(i(`${h}/share/doc/`) < i(`${h}/share/doc/README`));
    assert.ok(i(`${h}/share/doc/README`) < i(`${h}/share/doc/README.md`));
  });

  test('headers keep modes, symlinks and sizes, with fixed mtime and owner', async () => {
    const entries = byName(await readTar(await collect(packStorePaths(PATHS, { root: rootA }))));
    const h = HELLO.slice(1);
    for (const e of entries.values()) {
      assert.equal(e.mtime, FIXED_MTIME.getTime(), e.name);
      assert.equal(e.mtime, 1000);
      assert.equal(e.uid, 0, e.name);
      assert.equal(e.gid, 0, e.name);
      assert.equal(e.uname, '', e.name);
      assert.equal(e.gname, '', e.name);
    }
    assert.deepEqual(
      [entries.get('nix/')?.mode, entries.get('nix/store/')?.mode, entries.get('nix/store/')?.type],
      [0o755, 0o755, 'directory'],
    );
    assert.equal(entries.get(`${h}/`)?.mode, 0o555);
    assert.equal(entries.get(`${h}/share/doc/`)?.mode, 0o755);
    assert.equal(entries.get(`${h}/share/empty/`)?.type, 'directory');
    assert.equal(entries.get(`${h}/bin/hello`)?.mode, 0o555);
    assert.equal(entries.get(`${h}/share/doc/README`)?.mode, 0o444);
    assert.equal(entries.get(`${h}/share/doc/README.md`)?.mode, 0o644);
    assert.equal(entries.get(`${h}/share/empty-file`)?.size, 0);
    const big = entries.get(`${h}/share/big.bin`);
    assert.equal(big?.size, BIG_SIZE);
    assert.equal(big?.sha256, sha256Hex(bigContent()));
    assert.deepEqual(
      [entries.get(`${h}/bin/hi`)?.type, entries.get(`${h}/bin/hi`)?.linkname],
      ['symlink', 'hello'],
    );
    assert.equal(entries.get(`${h}/share/lib-link`)?.linkname, `${LIBS}/lib/${'x'.repeat(120)}.so`);
    assert.equal(entries.get(`${h}/${LONG_DIR}/${LONG_FILE}`)?.sha256, sha256Hex('long\n'));
    assert.equal(entries.get(SCRIPT.slice(1))?.type, 'file');
    assert.equal(entries.get(SCRIPT.slice(1))?.mode, 0o555);
    assert.deepEqual([entries.get(ALIAS.slice(1))?.type, entries.get(ALIAS.slice(1))?.linkname], ['symlink', HELLO]);
  });

  test('GNU tar lists the modes, links and fixed date', async () => {
    const file = join(scratch, 'list.tar');
    await pipeline(packStorePaths(PATHS, { root: rootA }), fs.createWriteStream(file));
    const out = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', file], {
      env: { ...process.env, TZ: 'UTC' },
    }).toString();
    const h = HELLO.slice(1);
    const line = (name: string): string => {
      const l = out.split('\n').find((x) => x.endsWith(` ${name}`) || x.includes(` ${name} -> `));
      assert.ok(l, `no line for ${name} in\n${out}`);
      return l;
    };
    assert.match(line('nix/'), /^drwxr-xr-x 0\/0 +0 1970-01-01 00:00:01 nix\/$/);
    assert.match(line(`${h}/bin/hello`), /^-r-xr-xr-x 0\/0 +21 1970-01-01 00:00:01 /);
    assert.match(line(`${h}/share/doc/README`), /^-r--r--r-- 0\/0 /);
    assert.match(line(`${h}/bin/hi`), /^lrwxrwxrwx 0\/0 .* -> hello$/);
    assert.match(line(`${h}/share/empty/`), /^dr-xr-xr-x /);
    assert.ok(line(`${h}/${LONG_DIR}/${LONG_FILE}`));
    assert.ok(line(`${h}/share/lib-link`).endsWith(`-> ${LIBS}/lib/${'x'.repeat(120)}.so`));
  });

  test('GNU tar extracts the gzip with contents, modes and links intact', async () => {
    const file = join(scratch, 'layer.tar.gz');
    const out = join(scratch, 'extracted');
    await mkdir(out);
    const { stream, done } = compressAndHash(packStorePaths(PATHS, { root: rootA }));
    await pipeline(stream, fs.createWriteStream(file));
    await done;
    execFileSync('tar', ['-xzf', file, '-C', out]);
    const h = join(out, HELLO);
    assert.ok((await readFile(join(h, 'share/big.bin'))).equals(bigContent()));
    assert.equal(await readFile(join(h, `${LONG_DIR}/${LONG_FILE}`), 'utf8'), 'long\n');
    assert.equal(await readlink(join(h, 'bin/hi')), 'hello');
    assert.equal(await readlink(join(out, ALIAS)), HELLO);
    assert.equal((await lstat(join(h, 'bin/hello'))).mode & 0o7777, 0o555);
    assert.equal((await lstat(join(h, 'share/doc/README.md'))).mode & 0o7777, 0o644);
    assert.equal((await lstat(join(h, 'share/empty'))).isDirectory(), true);
    assert.equal((await lstat(join(h, 'a/b/c/deep.txt'))).mtimeMs, 1000);
    execFileSync('chmod', ['-R', 'u+w', out]);
  });

  test('hard links are stored as two regular files', async () => {
    const root = join(scratch, 'hardlinks');
    const p = '/nix/store/4eeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-hl';
    await mkdir(join(root, p), { recursive: true });
    await writeFile(join(root, p, 'one'), 'same content\n');
    await link(join(root, p, 'one'), join(root, p, 'two'));
    const entries = byName(await readTar(await collect(packStorePaths([p], { root }))));
    for (const n of ['one', 'two']) {
      const e = entries.get(`${p.slice(1)}/${n}`);
      assert.equal(e?.type, 'file');
      assert.equal(e?.sha256, sha256Hex('same content\n'));
    }
  });

  test('a path inside another requested path, and duplicates, are packed once', async () => {
    const t1 = await collect(packStorePaths([HELLO], { root: rootA }));
    const t2 = await collect(packStorePaths([`${HELLO}/bin`, HELLO, HELLO], { root: rootA }));
    assert.ok(t1.equals(t2));
  });

  test('no paths give an empty archive', async () => {
    const t = await collect(packStorePaths([]));
    assert.equal(t.length, 1024);
    assert.ok(t.equals(Buffer.alloc(1024)));
  });

  test('errors: relative path throws, missing path and fifo fail the stream', async () => {
    assert.throws(
      () => packStorePaths(['nix/store/x']),
      (e: unknown) => e instanceof TarballError && e.code === 'invalid-path',
    );
    assert.throws(() => packStorePaths(['/nix/store/../etc']), TarballError);
    await assert.rejects(collect(packStorePaths(['/nix/store/does-not-exist'], { root: scratch })), {
      code: 'ENOENT',
    });
    const root = join(scratch, 'fifo');
    const p = '/nix/store/5fffffffffffffffffffffffffffffff-fifo';
    await mkdir(join(root, p), { recursive: true });
    execFileSync('mkfifo', [join(root, p, 'pipe')]);
    await assert.rejects(
      collect(packStorePaths([p], { root })),
      (e: unknown) => e instanceof TarballError && e.code === 'unsupported-file-type',
    );
  });

  test('destroying the output stops the packer', async () => {
    const s = packStorePaths(PATHS, { root: rootA });
    const first = await new Promise<Buffer>((resolve) => s.once('data', resolve));
    assert.ok(first.length > 0);
    s.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(s.destroyed, true);
  });

  test('a 200 MB file streams through with little memory', async (t) => {
    const root = join(scratch, 'sparse');
    const p = '/nix/store/6ggggggggggggggggggggggggggggggg-big';
    await mkdir(join(root, p), { recursive: true });
    const size = 200 * 1024 * 1024;
    await writeFile(join(root, p, 'head'), 'x');
    await truncate(join(root, p, 'head'), size); // sparse: reads as zeros after the first byte
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    try {
      const { stream, done } = compressAndHash(packStorePaths([p], { root }));
      let compressed = 0;
      for await (const chunk of stream) {
        compressed += (chunk as Buffer).length;
        peak = Math.max(peak, process.memoryUsage().rss);
      }
      const info = await done;
      assert.ok(info.uncompressedSize > size);
      const mb = (n: number): string => (n / 1024 / 1024).toFixed(1);
      t.diagnostic(
        `rss base ${mb(base)} MB, peak ${mb(peak)} MB, delta ${mb(peak - base)} MB; tar ${mb(info.uncompressedSize)} MB -> gzip ${mb(compressed)} MB`,
      );
      assert.ok(peak - base < 80 * 1024 * 1024, `rss grew by ${mb(peak - base)} MB`);
    } finally {
      clearInterval(timer);
    }
  });

  test('a 50,000-file tree packs with bounded memory', async (t) => {
    const root = join(scratch, 'many');
    const p = '/nix/store/7hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh-many';
    const dirs = 50;
    const perDir = 1000;
    for (let d = 0; d < dirs; d++) {
      const dir = join(root, p, `d${d}`);
      fs.mkdirSync(dir, { recursive: true });
      for (let f = 0; f < perDir; f++) fs.writeFileSync(join(dir, `f${f}`), `${d}/${f}\n`);
    }
    const base = process.memoryUsage().rss;
    let peak = base;
    let entries = 0;
    let last = Buffer.alloc(0);
    let sorted = true;
    const ex = extract();
    const reading = (async () => {
      for await (const entry of ex) {
        const name = Buffer.from(entry.header.name);
        if (Buffer.compare(last, name) >= 0) sorted = false;
        last = name;
        entries++;
        entry.resume();
        if (entries % 1000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
      }
    })();
    let lastTick = performance.now();
    let maxGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - lastTick);
      lastTick = now;
    }, 1);
    const started = Date.now();
    try {
      await pipeline(packStorePaths([p], { root }), ex);
      await reading;
    } finally {
      clearInterval(ticker);
    }
    t.diagnostic(
      `${entries} entries in ${Date.now() - started} ms; rss delta ${((peak - base) / 1024 / 1024).toFixed(1)} MB; ` +
        `longest event-loop gap ${maxGap.toFixed(1)} ms`,
    );
    assert.equal(entries, 2 + 1 + dirs + dirs * perDir);
    assert.ok(sorted, 'entries out of order');
    assert.ok(peak - base < 100 * 1024 * 1024);
    assert.ok(maxGap < 500, `event loop blocked for ${maxGap} ms`);

    // A reader that stops reading stops the packer: nothing piles up in memory.
    const stalled = packStorePaths([p], { root });
    await new Promise((resolve) => stalled.once('readable', resolve));
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.diagnostic(`buffered while the reader is stalled: ${stalled.readableLength} bytes`);
    assert.ok(stalled.readableLength <= 1024 * 1024, `${stalled.readableLength} bytes buffered`);
    stalled.destroy();
  });
});

// ---------------------------------------------------------------- packSymlinkLayer

describe('packSymlinkLayer', () => {
  const CURL = '/nix/store/8iiiiiiiiiiiiiiiiiiiiiiiiiiiiiii-curl';
  const CACERT = '/nix/store/9jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-cacert';
  const HELLO2 = '/nix/store/akkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-hello-other';
  const COREUTILS = '/nix/store/blllllllllllllllllllllllllllllll-coreutils';
  let root: string;

  before(async () => {
    root = join(scratch, 'symlink-root');
    await makeTree(root, [
      { kind: 'dir', path: `${CURL}/bin`, mode: 0o555 },
      { kind: 'file', path: `${CURL}/bin/curl`, mode: 0o555, content: 'curl' },
      { kind: 'symlink', path: `${CURL}/bin/curl-alias`, target: 'curl' },
      { kind: 'dir', path: `${CURL}/share/man/man1`, mode: 0o555 },
      { kind: 'file', path: `${CURL}/share/man/man1/curl.1`, mode: 0o444, content: 'man' },
      { kind: 'dir', path: `${CURL}/etc`, mode: 0o555 },
      { kind: 'file', path: `${CURL}/etc/shared`, mode: 0o444, content: 'curl wins' },
      { kind: 'dir', path: `${CACERT}/etc/ssl/certs`, mode: 0o555 },
      { kind: 'file', path: `${CACERT}/etc/ssl/certs/ca-bundle.crt`, mode: 0o444, content: 'certs' },
      { kind: 'file', path: `${CACERT}/etc/shared`, mode: 0o444, content: 'cacert loses' },
      { kind: 'dir', path: `${HELLO2}/bin`, mode: 0o555 },
      { kind: 'file', path: `${HELLO2}/bin/curl`, mode: 0o555, content: 'not curl' },
      { kind: 'file', path: `${HELLO2}/bin/hello`, mode: 0o555, content: 'hello' },
      { kind: 'dir', path: `${HELLO2}/share/man/man1`, mode: 0o555 },
      { kind: 'file', path: `${HELLO2}/share/man/man1/hello.1`, mode: 0o444, content: 'man' },
      { kind: 'file', path: `${HELLO2}/etc`, mode: 0o444, content: 'a file where curl has a dir' },
      { kind: 'dir', path: `${COREUTILS}/bin`, mode: 0o555 },
      { kind: 'file', path: `${COREUTILS}/bin/env`, mode: 0o555, content: 'env' },
      { kind: 'file', path: SCRIPT, mode: 0o555, content: '#!/bin/sh\n' },
      { kind: 'symlink', path: ALIAS, target: CURL },
    ]);
  });

  const packages = [CURL, SCRIPT, ALIAS, CACERT, HELLO2].map((storePath) => ({ storePath }));

  test('links files to their store paths under real directories; first package wins', async () => {
    const entries = await readTar(await collect(packSymlinkLayer(packages, { root })));
    const m = byName(entries);
    const links = Object.fromEntries(entries.filter((e) => e.type === 'symlink').map((e) => [e.name, e.linkname]));
    assert.deepEqual(links, {
      'bin/curl': `${CURL}/bin/curl`,
      'bin/curl-alias': `${CURL}/bin/curl-alias`,
      'bin/hello': `${HELLO2}/bin/hello`,
      'etc/shared': `${CURL}/etc/shared`,
      'etc/ssl/certs/ca-bundle.crt': `${CACERT}/etc/ssl/certs/ca-bundle.crt`,
      'share/man/man1/curl.1': `${CURL}/share/man/man1/curl.1`,
      'share/man/man1/hello.1': `${HELLO2}/share/man/man1/hello.1`,
    });
    const dirs = entries.filter((e) => e.type === 'directory').map((e) => e.name);
    assert.deepEqual(dirs, [
      'bin/',
      'etc/',
      'etc/ssl/',
      'etc/ssl/certs/',
      'share/',
      'share/man/',
      'share/man/man1/',
      'tmp/',
    ]);
    for (const d of dirs.filter((x) => x !== 'tmp/')) assert.equal(m.get(d)?.mode, 0o755, d);
    assert.equal(m.get('tmp/')?.mode, 0o1777);
    assert.equal(m.has('usr/bin/env'), false, 'no env without coreutils');
    const names = entries.map((e) => e.name);
    assert.deepEqual(names, [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    for (const e of entries) {
      assert.deepEqual([e.mtime, e.uid, e.gid, e.uname, e.gname], [1000, 0, 0, '', ''], e.name);
    }
  });

  test('a file package before a directory package wins the name', async () => {
    const entries = byName(await readTar(await collect(packSymlinkLayer([{ storePath: HELLO2 }, { storePath: CURL }], { root }))));
    assert.equal(entries.get('etc')?.type, 'symlink');
    assert.equal(entries.get('etc')?.linkname, `${HELLO2}/etc`);
    assert.equal(entries.has('etc/'), false);
    assert.equal(entries.has('etc/shared'), false);
    assert.equal(entries.get('bin/curl')?.linkname, `${HELLO2}/bin/curl`);
  });

  test('usr/bin/env points at coreutils when given', async () => {
    const entries = byName(
      await readTar(await collect(packSymlinkLayer([...packages, { storePath: COREUTILS }], { root, coreutilsPath: COREUTILS }))),
    );
    assert.equal(entries.get('usr/')?.type, 'directory');
    assert.equal(entries.get('usr/bin/')?.type, 'directory');
    assert.equal(entries.get('usr/bin/env')?.type, 'symlink');
    assert.equal(entries.get('usr/bin/env')?.linkname, `${COREUTILS}/bin/env`);
    assert.equal(entries.get('bin/env')?.linkname, `${COREUTILS}/bin/env`);
  });

  test('is reproducible and extracts with GNU tar', async () => {
    const opts = { root, coreutilsPath: COREUTILS };
    const a = await gzipped(packSymlinkLayer(packages, opts));
    const now = new Date();
    await utimes(join(root, CURL, 'bin/curl'), now, now);
    const b = await gzipped(packSymlinkLayer(packages, opts));
    assert.ok(a.gz.equals(b.gz));
    assert.equal(a.diffId, b.diffId);
    const file = join(scratch, 'symlinks.tar.gz');
    const out = join(scratch, 'symlinks-extracted');
    await mkdir(out);
    await writeFile(file, a.gz);
    execFileSync('tar', ['-xzf', file, '-C', out]);
    assert.equal(await readlink(join(out, 'etc/ssl/certs/ca-bundle.crt')), `${CACERT}/etc/ssl/certs/ca-bundle.crt`);
    assert.equal(await readlink(join(out, 'usr/bin/env')), `${COREUTILS}/bin/env`);
    assert.equal((await lstat(join(out, 'tmp'))).mode & 0o7777, 0o1777);
  });

  test('with no packages the layer holds tmp/ only', async () => {
    const entries = await readTar(await collect(packSymlinkLayer([], {})));
    assert.deepEqual(
      entries.map((e) => [e.name, e.type, e.mode]),
      [['tmp/', 'directory', 0o1777]],
    );
  });
});
