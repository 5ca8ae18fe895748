/**
 * Starts the Cloud Storage emulator (from firebase-tools, see
 * deploy/gcs-emulator/launcher.js) in a child process on a free loopback port, for
 * tests. Point @google-cloud/storage at it with
 * `process.env.STORAGE_EMULATOR_HOST = emu.host` (and
 * `METADATA_SERVER_DETECTION=none`) before creating the client.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A running emulator. */
export interface GcsEmulator {
  /** Base URL, `http://127.0.0.1:PORT`. */
  host: string;
  /** Deletes every object and bucket. */
  reset(): Promise<void>;
  /** Stops the emulator and removes its temporary files. */
  stop(): Promise<void>;
}

const LAUNCHER = path.join(__dirname, '../../deploy/gcs-emulator/launcher.js');

/** A TCP port that was free on 127.0.0.1 a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Waits for the child to exit (or resolves at once when it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Spawns the launcher on `port` and resolves when it says it is listening; rejects with its stderr otherwise. */
function launch(port: number, tmp: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // TMPDIR: the emulator keeps upload files under os.tmpdir()/firebase and
    // deletes that whole folder on stop; give each instance its own.
    const child = spawn(process.execPath, [LAUNCHER], {
      env: {
        ...process.env,
        TMPDIR: tmp,
        GCS_EMULATOR_HOST: '127.0.0.1',
        GCS_EMULATOR_PORT: String(port),
        GCS_EMULATOR_PROJECT: 'demo-nixery',
        GCS_EMULATOR_STOP_ON_STDIN_CLOSE: '1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gcs emulator did not start within 30 s: ${err}`));
    }, 30_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (/"msg":"gcs emulator listening"/.test(out)) {
        clearTimeout(timer);
        child.stdout!.resume();
        resolve(child);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.length > 20_000) err = err.slice(-20_000);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gcs emulator exited (${code ?? signal}) before it was ready: ${err}`));
    });
  });
}

/** Starts an emulator; retries on another port if the first one was taken meanwhile. */
export async function startGcsEmulator(): Promise<GcsEmulator> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'gcs-emu-'));
    const port = await freePort();
    let child: ChildProcess;
    try {
      child = await launch(port, tmp);
    } catch (err) {
      lastErr = err;
      await rm(tmp, { recursive: true, force: true });
      continue;
    }
    const host = `http://127.0.0.1:${port}`;
    let stopped: Promise<void> | undefined;
    return {
      host,
      async reset() {
        const res = await fetch(`${host}/internal/reset`, { method: 'POST' });
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`gcs emulator reset: HTTP ${res.status}`);
      },
      stop() {
        stopped ??= (async () => {
          const done = exited(child);
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await done;
          clearTimeout(timer);
          await rm(tmp, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  }
  throw lastErr;
}

/** A service-account key file that can sign URLs locally (the emulator does not check signatures). */
export interface FakeServiceAccount {
  /** Path of the JSON key file. */
  keyFilename: string;
  clientEmail: string;
  projectId: string;
  /** Removes the key file. */
  cleanup(): Promise<void>;
}

/** Writes a service-account JSON key with a freshly generated RSA key to a temp file. */
export async function writeFakeServiceAccount(projectId = 'demo-nixery'): Promise<FakeServiceAccount> {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const clientEmail = `nixery-test@${projectId}.iam.gserviceaccount.com`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fake-sa-'));
  const keyFilename = path.join(dir, 'key.json');
  await writeFile(
    keyFilename,
    JSON.stringify({
      type: 'service_account',
      project_id: projectId,
      private_key_id: 'fake-key-id',
      private_key: privateKey,
      client_email: clientEmail,
      client_id: '1',
      token_uri: 'http://127.0.0.1:1/token',
    }),
    { mode: 0o600 },
  );
  return { keyFilename, clientEmail, projectId, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
