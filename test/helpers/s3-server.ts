/**
 * Starts an S3-compatible server (s3rver, see deploy/s3-server/launcher.js) in
 * its own process group on a free loopback port with a fresh data directory,
 * for tests. It knows one access key, `S3RVER` / `S3RVER` (`S3_TEST_CREDENTIALS`),
 * rejects other key ids (403 InvalidAccessKeyId) and does not verify SigV4
 * signatures.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, logTail, startProcess } from './proc';

/** The one key pair the server accepts. */
export const S3_TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A running S3 server. */
export interface S3Server {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** Where it keeps buckets and objects (one folder per bucket). */
  dir: string;
  /** The server's log so far. */
  log(): Promise<string>;
  /** Where that log is (test-artifacts/s3-server-PORT.log, kept after stop). */
  logFile: string;
  /** Environment that points a Nixery process at `bucket` on this server (path style, test credentials). */
  nixeryEnv(bucket: string): Record<string, string>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

const REPO = path.join(__dirname, '../..');
const LAUNCHER = path.join(REPO, 'deploy/s3-server/launcher.js');

/** Starts the server with `buckets` made empty; retries on another port if one was taken meanwhile. */
export async function startS3Server(buckets: string[] = ['nixery']): Promise<S3Server> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 's3-server-'));
  const data = path.join(dir, 'data');
  await mkdir(data);
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const logFile = path.join(REPO, 'test-artifacts', `s3-server-${port}.log`);
    try {
      const proc = await startProcess({
        name: 's3rver',
        cmd: process.execPath,
        args: [LAUNCHER],
        logFile,
        env: { S3_SERVER_HOST: '127.0.0.1', S3_SERVER_PORT: String(port), S3_SERVER_DIR: data, S3_SERVER_BUCKETS: buckets.join(',') },
        ready: async () => (await logTail(logFile, 20_000)).includes(`"port":${port}`),
        readyTimeoutMs: 30_000,
        stopGraceMs: 5_000,
      });
      return {
        endpoint,
        dir: data,
        log: () => logTail(logFile, 20_000),
        logFile,
        nixeryEnv: (bucket) => ({
          NIXERY_STORAGE_BACKEND: 's3',
          S3_BUCKET: bucket,
          S3_ENDPOINT: endpoint,
          S3_FORCE_PATH_STYLE: 'true',
          S3_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
        }),
        stop: async () => {
          await proc.stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastErr = err;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastErr;
}

/** A loopback HTTP proxy in front of an S3 server that records each request line (`METHOD /path?query`). */
export interface RecordingProxy {
  endpoint: string;
  requests: string[];
  close(): Promise<void>;
}

/** Starts a `RecordingProxy` forwarding to `target` (an `http://127.0.0.1:PORT` endpoint). */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const to = new URL(target);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const up = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
