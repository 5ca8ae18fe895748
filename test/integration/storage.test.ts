/**
 * Storage drivers against real backends: the filesystem driver in a temp dir,
 * the GCS driver against the Cloud Storage emulator (public URLs, and V4
 * signed URLs made with a freshly generated service-account key).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { sha256Digest } from '../../libs/shared/src/core/digest';
import type { StorageKey } from '../../libs/shared/src/storage/driver';
import { InvalidStorageKeyError } from '../../libs/shared/src/storage/checked';
import { createFilesystemDriver } from '../../libs/shared/src/storage/filesystem';
import { createGcsDriver } from '../../libs/shared/src/storage/gcs';
import { createStorage } from '../../libs/shared/src/storage/index';
import { blobKey } from '../../libs/shared/src/storage/keys';
import { type GcsEmulator, startGcsEmulator, writeFakeServiceAccount } from '../helpers/gcs-emulator';
import { storageConformance } from '../storage-conformance';

storageConformance('filesystem', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'fs-driver-'));
  return { driver: createFilesystemDriver(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

/** Starts an emulator and points the GCS client at it (tests may set env; the driver takes options). */
async function emulator(): Promise<GcsEmulator> {
  const emu = await startGcsEmulator();
  process.env.STORAGE_EMULATOR_HOST = emu.host;
  process.env.METADATA_SERVER_DETECTION = 'none';
  return emu;
}

storageConformance('gcs (emulator, public URLs)', async () => {
  const emu = await emulator();
  const driver = createGcsDriver({ bucket: 'nixery-public', signedUrls: false, signedUrlTtlSeconds: 300 });
  return { driver, cleanup: () => emu.stop() };
});

storageConformance('gcs (emulator, signed URLs)', async () => {
  const emu = await emulator();
  const sa = await writeFakeServiceAccount();
  const driver = createGcsDriver({
    bucket: 'nixery-signed',
    signedUrls: true,
    signedUrlTtlSeconds: 120,
    keyFilename: sa.keyFilename,
    projectId: sa.projectId,
  });
  return {
    driver,
    cleanup: async () => {
      await emu.stop();
      await sa.cleanup();
    },
  };
});

describe('filesystem driver specifics', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'fs-driver-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const escaping = [
    '../x',
    'layers/../../etc/passwd',
    '/etc/passwd',
    '/tmp/x',
    `layers/${'a'.repeat(64)}/../../../x`,
    `layers/../${'a'.repeat(64)}`,
    `./layers/${'a'.repeat(64)}`,
    `layers/${'A'.repeat(64)}`,
    'staging/../../x',
    '',
    'layers',
    'layers/',
  ];

  test('rejects keys that are not project keys or would leave the root, on every method', async () => {
    const d = createFilesystemDriver(root);
    const good = blobKey(sha256Digest('good'));
    for (const raw of escaping) {
      const key = raw as StorageKey;
      await assert.rejects(d.write(key, Readable.from([Buffer.from('x')])), InvalidStorageKeyError, `write ${raw}`);
      await assert.rejects(d.read(key), InvalidStorageKeyError, `read ${raw}`);
      await assert.rejects(d.stat(key), InvalidStorageKeyError, `stat ${raw}`);
      await assert.rejects(d.delete(key), InvalidStorageKeyError, `delete ${raw}`);
      await assert.rejects(d.move(key, good), InvalidStorageKeyError, `move from ${raw}`);
      await assert.rejects(d.move(good, key), InvalidStorageKeyError, `move to ${raw}`);
    }
    assert.deepEqual(await readdir(root), [], 'nothing was written under the root');
  });

  test('removeStaging also removes old partial files of interrupted writes (a SIGKILL mid-write), beside any key', async () => {
    const own = await mkdtemp(path.join(os.tmpdir(), 'fs-driver-'));
    try {
      const d = createFilesystemDriver(own);
      const hex = 'b'.repeat(64);
      const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
      const old = [`staging/${uuid}.partial-0a1b2c3d4e5f`, `layers/${hex}.partial-00112233aabb`, `manifests/${hex}.partial-445566778899`];
      const kept = [`layers/${hex}`, `manifests/${hex}`, `layers/${'c'.repeat(64)}.partial-aabbccddeeff`];
      for (const dir of ['staging', 'layers', 'manifests']) await mkdir(path.join(own, dir), { recursive: true });
      const hourAgo = new Date(Date.now() - 3600_000);
      for (const f of [...old, ...kept]) {
        await writeFile(path.join(own, f), 'x');
        if (f !== kept[2]) await utimes(path.join(own, f), hourAgo, hourAgo);
      }
      assert.equal((await d.removeStaging(new Date(Date.now() - 600_000))).removed, old.length);
      for (const f of old) await assert.rejects(stat(path.join(own, f)), { code: 'ENOENT' }, `${f} is gone`);
      for (const f of kept) assert.ok(await stat(path.join(own, f)), `${f} stays (a digest object, or a write in progress)`);
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  test('lays objects out as plain files under root/<key>, with no leftovers', async () => {
    const d = createFilesystemDriver(root);
    const data = randomBytes(1000);
    const digest = sha256Digest(data);
    await d.write(blobKey(digest), Readable.from([data]));
    const hex = digest.slice('sha256:'.length);
    assert.deepEqual(await readFile(path.join(root, 'layers', hex)), data);
    assert.deepEqual(await readdir(path.join(root, 'layers')), [hex], 'no temporary files left');
  });

  test('a failed write removes its temporary file and keeps the previous object', async () => {
    const d = createFilesystemDriver(root);
    const key = blobKey(sha256Digest(randomBytes(8)));
    await d.write(key, Readable.from([Buffer.from('previous')]));
    const failing = new Readable({
      read() {
        this.push(randomBytes(1024));
        this.destroy(new Error('boom'));
      },
    });
    await assert.rejects(d.write(key, failing), /boom/);
    assert.equal((await readFile(path.join(root, key))).toString(), 'previous');
    const names = await readdir(path.join(root, 'layers'));
    assert.ok(names.every((n) => !n.includes('.partial-')), `leftover temp file: ${names.join(',')}`);
  });

  test('a reader opened before a delete still reads the whole object', async () => {
    const d = createFilesystemDriver(root);
    const key = blobKey(sha256Digest(randomBytes(8)));
    const data = randomBytes(200_000);
    await d.write(key, Readable.from([data]));
    const r = await d.read(key);
    assert.ok(r);
    await d.delete(key);
    const chunks: Buffer[] = [];
    for await (const c of r.stream) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), data);
  });

  test('a directory at a key is not an object', async () => {
    const d = createFilesystemDriver(root);
    const key = blobKey(sha256Digest(randomBytes(8)));
    await d.write(blobKey(sha256Digest('seed')), Readable.from([Buffer.from('s')]));
    await writeFile(path.join(root, 'layers', 'ignored'), 'x');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.join(root, key));
    assert.equal(await d.stat(key), null);
    assert.equal(await d.read(key), null);
  });

  test('ping creates a missing root and fails when the root cannot be a directory', async () => {
    const fresh = path.join(root, 'not-yet', 'data');
    await createFilesystemDriver(fresh).ping();
    assert.ok((await stat(fresh)).isDirectory());
    const file = path.join(root, 'a-file');
    await writeFile(file, 'x');
    await assert.rejects(createFilesystemDriver(path.join(file, 'sub')).ping());
  });

  test('a symlinked root is followed (root may be a mount point link)', async () => {
    const real = await mkdtemp(path.join(os.tmpdir(), 'fs-real-'));
    const link = path.join(root, 'link');
    await symlink(real, link);
    try {
      const d = createFilesystemDriver(link);
      const key = blobKey(sha256Digest('via-link'));
      await d.write(key, Readable.from([Buffer.from('via-link')]));
      assert.equal((await readFile(path.join(real, key))).toString(), 'via-link');
    } finally {
      await rm(real, { recursive: true, force: true });
    }
  });
});

describe('gcs driver specifics', () => {
  let emu: GcsEmulator;
  before(async () => {
    emu = await emulator();
  });
  after(async () => {
    await emu?.stop();
  });

  test('redirect URL: public object URL on the emulator host when not signing', async () => {
    const d = createGcsDriver({ bucket: 'b-public', signedUrls: false, signedUrlTtlSeconds: 60 });
    const key = blobKey(sha256Digest('k'));
    assert.equal(await d.redirectUrl!(key), `${emu.host}/b-public/${key}`);
  });

  test('redirect URL: falls back to the public URL when signing is asked for but no credentials can sign', async () => {
    const d = createGcsDriver({ bucket: 'b-nocreds', signedUrls: true, signedUrlTtlSeconds: 60 });
    const key = blobKey(sha256Digest('k'));
    assert.equal(await d.redirectUrl!(key), `${emu.host}/b-nocreds/${key}`);
  });

  test('redirect URL: V4 signed, GET, expiring after the configured TTL', async () => {
    const sa = await writeFakeServiceAccount();
    try {
      const d = createGcsDriver({ bucket: 'b-signed', signedUrls: true, signedUrlTtlSeconds: 123, keyFilename: sa.keyFilename });
      const key = blobKey(sha256Digest('k'));
      const url = new URL((await d.redirectUrl!(key))!);
      assert.equal(url.origin, emu.host);
      assert.equal(url.pathname, `/b-signed/${key}`);
      assert.equal(url.searchParams.get('X-Goog-Algorithm'), 'GOOG4-RSA-SHA256');
      assert.equal(url.searchParams.get('X-Goog-Expires'), '123');
      assert.match(url.searchParams.get('X-Goog-Credential') ?? '', new RegExp(`^${sa.clientEmail.replace(/[.@]/g, '\\$&')}/`));
      assert.match(url.searchParams.get('X-Goog-Signature') ?? '', /^[0-9a-f]{512}$/);
    } finally {
      await sa.cleanup();
    }
  });

  test('stat reports the content type given at write time; move keeps it', async () => {
    const d = createGcsDriver({ bucket: 'b-ct', signedUrls: false, signedUrlTtlSeconds: 60 });
    const from = blobKey(sha256Digest('from'));
    const to = blobKey(sha256Digest('to'));
    await d.write(from, Readable.from([Buffer.from('{}')]), { contentType: 'application/vnd.oci.image.manifest.v1+json' });
    assert.deepEqual(await d.stat(from), { size: 2, contentType: 'application/vnd.oci.image.manifest.v1+json' });
    await d.move(from, to);
    assert.equal((await d.stat(to))?.contentType, 'application/vnd.oci.image.manifest.v1+json');
  });

  test('ping fails fast when the service is unreachable or does not answer', async () => {
    const saved = process.env.STORAGE_EMULATOR_HOST;
    // A server that accepts connections and never answers.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => void sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      process.env.STORAGE_EMULATOR_HOST = 'http://127.0.0.1:1';
      let t0 = Date.now();
      await assert.rejects(createGcsDriver({ bucket: 'b', signedUrls: false, signedUrlTtlSeconds: 60 }).ping());
      assert.ok(Date.now() - t0 < 3000, `refused connection took ${Date.now() - t0} ms`);

      process.env.STORAGE_EMULATOR_HOST = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
      t0 = Date.now();
      await assert.rejects(createGcsDriver({ bucket: 'b', signedUrls: false, signedUrlTtlSeconds: 60 }).ping());
      assert.ok(Date.now() - t0 < 10_000, `silent server took ${Date.now() - t0} ms`);
    } finally {
      process.env.STORAGE_EMULATOR_HOST = saved;
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe('createStorage factory', () => {
  test('makes the driver the configuration names', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'fs-factory-'));
    try {
      const fsDriver = createStorage({ backend: 'filesystem', path: root });
      assert.equal(fsDriver.name, 'filesystem');
      assert.equal(fsDriver.redirectUrl, undefined);
      const key = blobKey(sha256Digest('factory'));
      await fsDriver.write(key, Readable.from([Buffer.from('factory')]));
      assert.equal((await readFile(path.join(root, key))).toString(), 'factory');
      const gcs = createStorage({ backend: 'gcs', bucket: 'b', signedUrls: false, signedUrlTtlSeconds: 60 });
      assert.equal(gcs.name, 'gcs');
      assert.equal(typeof gcs.redirectUrl, 'function');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
