/**
 * The client of a request through trusted proxies only (issue 12):
 * X-Forwarded-* count only from a peer in NIXERY_TRUSTED_PROXIES, and
 * X-Forwarded-For is walked from the right, skipping trusted hops; the
 * setting is checked at start-up; the package source is described
 * without its filesystem path.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Context } from 'koa';
import { clientInfo, clientKey, trustedProxySet } from '../../apps/gateway/src/client-address';
import { loadConfig } from '../../libs/shared/src/config/config';
import { Failed } from '../../libs/shared/src/core/failure';
import { SourceResolver } from '../../libs/shared/src/sources/resolver';

describe('client address through trusted proxies', () => {
  const trusted = trustedProxySet(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
  const fwd = { host: 'gw:8080', 'x-forwarded-for': '1.2.3.4, 5.6.7.8, 10.1.1.1', 'x-forwarded-host': 'registry.example.org', 'x-forwarded-proto': 'https' };

  it('ignores every X-Forwarded-* header from an untrusted peer', () => {
    assert.deepEqual(clientInfo(trusted, '203.0.113.9', fwd, false), { address: '203.0.113.9', host: 'gw:8080', proto: 'http' });
    assert.deepEqual(clientInfo(trusted, '::ffff:203.0.113.9', fwd, false).address, '203.0.113.9');
  });

  it('from a trusted peer takes the rightmost untrusted X-Forwarded-For hop, the forwarded host and proto', () => {
    assert.deepEqual(clientInfo(trusted, '10.0.0.2', fwd, false), { address: '5.6.7.8', host: 'registry.example.org', proto: 'https' });
    assert.equal(clientInfo(trusted, '::ffff:192.168.1.7', { 'x-forwarded-for': '9.9.9.9' }, false).address, '9.9.9.9');
    assert.equal(clientInfo(trusted, 'fd12::1', { 'x-forwarded-for': '2001:db8::5, fd00::3' }, false).address, '2001:db8::5');
  });

  it('with every hop trusted, the leftmost; with none or garbage, the peer itself', () => {
    assert.equal(clientInfo(trusted, '10.0.0.2', { 'x-forwarded-for': '10.9.9.9, 10.0.0.3' }, false).address, '10.9.9.9');
    assert.equal(clientInfo(trusted, '10.0.0.2', { 'x-forwarded-for': 'not-an-ip' }, false).address, '10.0.0.2');
    assert.equal(clientInfo(trusted, '10.0.0.2', {}, true).proto, 'https');
    assert.equal(clientInfo(trusted, '10.0.0.2', { 'x-forwarded-proto': 'gopher' }, false).proto, 'http');
  });

  it('admission counts the authenticated user when an auth middleware set one, else the address', () => {
    const ctx = (state: Record<string, unknown>) => ({ state, req: { socket: { remoteAddress: '::ffff:127.0.0.9' } } }) as unknown as Context;
    assert.equal(clientKey(ctx({ user: 'alice', client: { address: '5.6.7.8' } })), 'user:alice');
    assert.equal(clientKey(ctx({ client: { address: '5.6.7.8' } })), 'addr:5.6.7.8');
    assert.equal(clientKey(ctx({})), 'addr:127.0.0.9');
  });

  it('NIXERY_TRUSTED_PROXIES and NIXERY_BUILD_RATE are checked at start-up', () => {
    assert.deepEqual(loadConfig({}).trustedProxies, []);
    assert.deepEqual(loadConfig({ NIXERY_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8,::1/128' }).trustedProxies, ['127.0.0.1', '10.0.0.0/8', '::1/128']);
    for (const bad of ['10.0.0.0/33', 'example.com', '::1/129', '1.2.3.4/8/1']) assert.throws(() => loadConfig({ NIXERY_TRUSTED_PROXIES: bad }), /NIXERY_TRUSTED_PROXIES/);
    assert.deepEqual(loadConfig({}).admission.buildRate, { tokens: 60, perMs: 60_000 });
    assert.deepEqual(loadConfig({ NIXERY_BUILD_RATE: '30/15m' }).admission.buildRate, { tokens: 30, perMs: 900_000 });
    assert.equal(loadConfig({ NIXERY_BUILD_RATE: 'off' }).admission.buildRate, null);
    for (const bad of ['30', '0/60s', '30/0s', 'lots']) assert.throws(() => loadConfig({ NIXERY_BUILD_RATE: bad }), /NIXERY_BUILD_RATE/);
  });
});

describe('the package source as clients see it', () => {
  it('names no filesystem path, not even when the set cannot be read', async () => {
    const dir = '/nonexistent-nixery-pkgs/set';
    const r = new SourceResolver({ type: 'path', path: dir, bundled: false }, { ttlSeconds: 60, fallbackSeconds: 0, timeoutMs: 5000, watchPaths: false });
    try {
      assert.equal(r.describe(), 'local package set');
      assert.equal(new SourceResolver({ type: 'git', url: '/srv/pkgs.git' }, { ttlSeconds: 60, fallbackSeconds: 0, timeoutMs: 5000 }).describe(), 'local git repository');
      const err = await r.resolve('latest').then(() => null, (e: unknown) => e);
      assert.ok(err instanceof Failed, String(err));
      assert.equal(err.failure.kind, 'source_unavailable');
      assert.ok(!JSON.stringify(err.failure).includes(dir), JSON.stringify(err.failure));
    } finally {
      r.close();
    }
  });
});
