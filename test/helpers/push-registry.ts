/**
 * A push target for `nixery push` tests: Debian's docker-registry (CNCF
 * distribution) on loopback with filesystem storage and its access log on,
 * optionally behind htpasswd basic authentication (bcrypt, made with
 * bcryptjs). Uploads are counted on the registry's side, from its access log.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { distributionConfig } from './clients';
import { freePort, logTail, makeScratchDir, removeScratchDir, startProcess } from './proc';

/** A running push target. */
export interface PushRegistry {
  /** `127.0.0.1:PORT`. */
  host: string;
  dir: string;
  logFile: string;
  /** Access-log lines of requests whose method and path start as given (e.g. `POST`, `/v2/demo/blobs/uploads/`). */
  requests(method: string, pathPrefix: string): Promise<number>;
  stop(): Promise<void>;
}

/** Starts docker-registry; with `htpasswd` only that user (bcrypt-hashed password) may pull or push. */
export async function startPushRegistry(opts: { htpasswd?: { user: string; password: string } } = {}): Promise<PushRegistry> {
  const dir = await makeScratchDir('nixery-push-target-');
  const port = await freePort();
  let config = distributionConfig(dir, port);
  if (opts.htpasswd) {
    const file = join(dir, 'htpasswd');
    await writeFile(file, `${opts.htpasswd.user}:${bcrypt.hashSync(opts.htpasswd.password, 6)}\n`);
    config += ['auth:', '  htpasswd:', '    realm: nixery-test', `    path: ${file}`, ''].join('\n');
  }
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, config);
  const logFile = join(dir, 'registry.log');
  const proc = await startProcess({
    name: 'docker-registry',
    cmd: 'docker-registry',
    args: ['serve', configFile],
    logFile,
    ready: async () =>
      (await logTail(logFile, 1_000_000)).includes(`listening on 127.0.0.1:${port}`) &&
      [200, 401].includes((await fetch(`http://127.0.0.1:${port}/v2/`)).status),
    readyTimeoutMs: 30_000,
  });
  return {
    host: `127.0.0.1:${port}`,
    dir,
    logFile,
    requests: async (method, pathPrefix) => {
      const text = await readFile(logFile, 'utf8');
      return text.split('\n').filter((l) => l.includes(`"${method} ${pathPrefix}`)).length;
    },
    stop: async () => {
      await proc.stop();
      await removeScratchDir(dir);
    },
  };
}
