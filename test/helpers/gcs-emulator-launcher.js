'use strict';
/**
 * Runs the Cloud Storage emulator that ships inside firebase-tools, without the
 * firebase CLI (which wants Java and downloads a rules jar). The security-rules
 * runtime is stubbed out: the tests talk to it as an admin client, like the
 * real driver does.
 *
 * Usage: node gcs-emulator-launcher.js PORT
 * Prints one line `READY <port>` on stdout once it answers HTTP, then runs
 * until SIGTERM/SIGINT (or until its stdin closes, so it never outlives the
 * test process that started it). Objects live in memory and under $TMPDIR.
 */
const http = require('node:http');
const path = require('node:path');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write(`usage: gcs-emulator-launcher.js PORT (got ${process.argv[2]})\n`);
  process.exit(2);
}

const root = path.dirname(require.resolve('firebase-tools/package.json'));
const { StorageEmulator } = require(path.join(root, 'lib/emulator/storage/index.js'));
const { EmulatorRegistry } = require(path.join(root, 'lib/emulator/registry.js'));

const noop = async () => undefined;

/** One GET that resolves true when anything answers on the port. */
function probe() {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/b', timeout: 1000 }, (res) => {
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
  const emu = new StorageEmulator({
    projectId: 'demo-nixery',
    host: '127.0.0.1',
    port,
    auto_download: false,
    rules: { name: '/dev/null', content: '' },
  });
  emu._rulesRuntime.start = noop;
  emu._rulesRuntime.stop = noop;
  emu._rulesManager.start = noop;
  emu._rulesManager.stop = noop;
  EmulatorRegistry.set('storage', emu);

  // start() does not wait for the socket, nor report a bind failure: do both here.
  process.on('uncaughtException', (err) => {
    process.stderr.write(`gcs emulator: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  });
  await emu.start();
  const deadline = Date.now() + 15000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`emulator did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stdout.write(`READY ${port}\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await emu.stop().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}

main().catch((err) => {
  process.stderr.write(`gcs emulator: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
