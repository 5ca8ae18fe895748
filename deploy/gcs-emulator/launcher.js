'use strict';
/**
 * The Cloud Storage emulator of firebase-tools as a long-running service (the
 * `gcs-emulator` target of deploy/Dockerfile, used by deploy/compose.local.yml
 * where fake-gcs-server cannot be pulled). The firebase CLI is not used: it
 * wants Java and downloads a rules jar. The security-rules runtime is replaced
 * by no-ops; Nixery talks to the emulator as an admin client.
 *
 * The tests start the same launcher (test/helpers/gcs-emulator.ts).
 *
 * Environment: GCS_EMULATOR_HOST (default 0.0.0.0), GCS_EMULATOR_PORT
 * (default 4443), GCS_EMULATOR_PROJECT (default nixery-local), and
 * GCS_EMULATOR_STOP_ON_STDIN_CLOSE=1 to stop when stdin closes (so a test's
 * emulator never outlives the process that started it).
 * Prints one JSON line `{"msg":"gcs emulator listening",...}` once it answers.
 * Buckets appear on first write. Objects live in memory: a restart empties it.
 */
const http = require('node:http');
const path = require('node:path');

const host = process.env.GCS_EMULATOR_HOST || '0.0.0.0';
const port = Number(process.env.GCS_EMULATOR_PORT || 4443);
const projectId = process.env.GCS_EMULATOR_PROJECT || 'nixery-local';
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`gcs-emulator: bad GCS_EMULATOR_PORT ${process.env.GCS_EMULATOR_PORT}`);
  process.exit(2);
}

const root = path.dirname(require.resolve('firebase-tools/package.json'));
const { StorageEmulator } = require(path.join(root, 'lib/emulator/storage/index.js'));
const { EmulatorRegistry } = require(path.join(root, 'lib/emulator/registry.js'));

function answers() {
  const probeHost = host === '0.0.0.0' ? '127.0.0.1' : host;
  return new Promise((resolve) => {
    const req = http.get({ host: probeHost, port, path: '/b', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

async function main() {
  const emu = new StorageEmulator({ projectId, host, port, auto_download: false, rules: { name: '/dev/null', content: '' } });
  const noop = async () => undefined;
  for (const part of [emu._rulesRuntime, emu._rulesManager]) {
    part.start = noop;
    part.stop = noop;
  }
  EmulatorRegistry.set('storage', emu);
  // start() neither waits for the socket nor reports a bind failure.
  process.on('uncaughtException', (err) => {
    console.error(`gcs-emulator: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  });
  await emu.start();
  const deadline = Date.now() + 15000;
  while (!(await answers())) {
    if (Date.now() > deadline) throw new Error(`nothing answers on ${host}:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(JSON.stringify({ msg: 'gcs emulator listening', host, port, projectId }));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await emu.stop().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (process.env.GCS_EMULATOR_STOP_ON_STDIN_CLOSE === '1') {
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
  }
}

main().catch((err) => {
  console.error(`gcs-emulator: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
