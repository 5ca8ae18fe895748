// Starts s3rver (an S3-compatible server from npm, a devDependency of the
// project) for tests and for the S3 profile of docker-compose.yml.
// Settings from the environment:
//   S3_SERVER_HOST (default 127.0.0.1), S3_SERVER_PORT (default 4569),
//   S3_SERVER_DIR (where objects live, default ./s3-data),
//   S3_SERVER_BUCKETS (comma-separated buckets made at start, default "nixery").
// It accepts the access key "S3RVER" (secret "S3RVER") and rejects any other
// key id with 403 InvalidAccessKeyId; it does not verify SigV4 signatures.
// Prints one JSON line {"msg":"s3 server listening","port":N} when ready; stops
// on SIGTERM/SIGINT, and when stdin closes if S3_SERVER_STOP_ON_STDIN_CLOSE=1.
'use strict';
const S3rver = require('s3rver');

const host = process.env.S3_SERVER_HOST || '127.0.0.1';
const port = Number(process.env.S3_SERVER_PORT || 4569);
const directory = process.env.S3_SERVER_DIR || './s3-data';
const buckets = (process.env.S3_SERVER_BUCKETS || 'nixery').split(',').map((b) => b.trim()).filter(Boolean);

const server = new S3rver({ address: host, port, directory, silent: true, configureBuckets: buckets.map((name) => ({ name })) });

server.run().then(
  (addr) => console.log(JSON.stringify({ msg: "s3 server listening", host, port: addr.port, buckets })),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

// s3rver can throw outside a request (a client gone mid-stream): log it and keep serving.
process.on('uncaughtException', (err) => console.error(JSON.stringify({ msg: 's3 server error', error: String(err && err.stack ? err.stack : err) })));

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close().finally(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (process.env.S3_SERVER_STOP_ON_STDIN_CLOSE === '1') {
  process.stdin.on('end', stop).on('close', stop).resume();
}
