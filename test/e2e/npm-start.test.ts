/**
 * The README's first command: `npm start` sets up, builds and serves a working
 * registry with an embedded Redis, and stops cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO } from '../helpers/nixery';
import { freePort, makeScratchDir, processesMentioning, removeScratchDir, waitFor } from '../helpers/proc';

/** The process group of `pid` (/proc/PID/stat, the field after the parent's pid). */
function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

describe('npm start', () => {
  let scratch = '';
  after(async () => {
    if (scratch) await removeScratchDir(scratch);
  });

  it('serves the registry with an embedded redis-server and stops cleanly on SIGTERM', async () => {
    scratch = await makeScratchDir('nixery-npm-start-');
    const port = await freePort();
    const log = createWriteStream(path.join(REPO, 'test-artifacts', 'npm-start.log'));
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), STORAGE_PATH: scratch, HOST: '127.0.0.1' };
    delete env.REDIS_URL;
    const child = spawn('npm', ['start'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const up = await waitFor(() => fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false), { timeoutMs: 180_000 });
      assert.ok(up, 'the registry answers /v2/');
      const socket = path.join(scratch, 'redis', 'redis.sock');
      assert.ok(existsSync(socket), 'embedded redis-server listens on a unix socket under STORAGE_PATH');
      const res = await fetch(`http://127.0.0.1:${port}/v2/hello/manifests/latest`);
      assert.equal(res.status, 200);
      const digest = res.headers.get('docker-content-digest');
      assert.match(digest ?? '', /^sha256:[0-9a-f]{64}$/);
      assert.ok(existsSync(path.join(scratch, 'manifests', digest!.slice(7))), 'the manifest is stored under STORAGE_PATH');
      // A signal to npm's process group (Ctrl-C, a supervisor) must not stop Redis under the
      // graceful shutdown that still needs it: the embedded server lives in a group of its own.
      const redisPid = processesMentioning(socket);
      assert.equal(redisPid.length, 1, 'one redis-server for the socket');
      assert.notEqual(processGroup(redisPid[0]!), child.pid, 'redis-server is outside the process group that gets the signal');
      process.kill(-child.pid!, 'SIGTERM');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
      assert.equal(code, 0, 'exits 0 after SIGTERM');
      assert.ok(await waitFor(() => !existsSync(socket), { timeoutMs: 10_000 }), 'embedded redis-server stopped');
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
});
