/**
 * The request's logger (gateway request-log.ts, issue 15): made on first use,
 * with reqId, method, path and every field added before or after; never
 * made for a request that does not log (a warm pull).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import Koa from 'koa';
import pino from 'pino';
import { addLogFields, requestLogger } from '../../apps/gateway/src/request-log';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, log: pino({ level: 'debug' }, sink) };
}

/** A real Koa context for GET `path`, with the root logger the request-log middleware sets. */
function context(path: string, root?: pino.Logger): Koa.Context {
  const app = new Koa();
  const req = { url: path, method: 'GET', headers: {}, socket: {} };
  const ctx = app.createContext(req as never, { getHeader() {}, setHeader() {} } as never);
  if (root) ctx.state.logRoot = root;
  return ctx;
}

describe('request logger', () => {
  it('is made on first use only: adding fields makes no logger', () => {
    const { log } = capture();
    const ctx = context('/v2/hello/manifests/latest', log);
    addLogFields(ctx, { user: 'alice' });
    assert.equal(ctx.state.log, undefined, 'no child logger before a line is written');
    assert.equal(requestLogger(ctx), requestLogger(ctx), 'one logger per request, kept');
  });

  it('carries reqId, method, path and the fields added before and after it was made', async () => {
    const { lines, log } = capture();
    const ctx = context('/v2/hello/manifests/latest', log);
    addLogFields(ctx, { user: 'alice' });
    addLogFields(ctx, { image: 'hello', buildKey: 'k1' });
    requestLogger(ctx)?.info('first');
    addLogFields(ctx, { jobId: 'k1' });
    requestLogger(ctx)?.info('second');
    await new Promise((r) => setImmediate(r));
    const [first, second] = lines;
    assert.ok(first && second);
    assert.equal(typeof first.reqId, 'string');
    assert.equal(second.reqId, first.reqId, 'the same request id on every line');
    for (const l of [first, second]) {
      assert.equal(l.method, 'GET');
      assert.equal(l.path, '/v2/hello/manifests/latest');
      assert.equal(l.user, 'alice');
      assert.equal(l.image, 'hello');
      assert.equal(l.buildKey, 'k1');
    }
    assert.equal(first.jobId, undefined);
    assert.equal(second.jobId, 'k1');
  });

  it('is undefined outside the request-log middleware', () => {
    const ctx = context('/v2/');
    addLogFields(ctx, { user: 'bob' });
    assert.equal(requestLogger(ctx), undefined);
  });
});
