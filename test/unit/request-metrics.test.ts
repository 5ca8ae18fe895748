/**
 * The gateway's HTTP metrics (infra/request-metrics.ts, issue 15): counted
 * without prom-client on the request path, rendered by its registry as a
 * counter and a histogram with the same names, labels and buckets as before.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { RequestMetrics } from '../../libs/shared/src/infra/request-metrics';

/** `name{labels} value` lines of a /metrics page, by their full text before the value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('request metrics', () => {
  it('renders what prom-client renders for the same requests', async () => {
    const ours = new Registry();
    const m = new RequestMetrics(ours);
    const theirs = new Registry();
    const h = new Histogram({ name: 'nixery_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['method', 'route'], buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300], registers: [theirs] });
    const requests: [string, string, number, number][] = [
      ['GET', 'manifest', 200, 0.0004],
      ['GET', 'manifest', 200, 0.003],
      ['GET', 'manifest', 404, 0.001], // on a bound: that bucket
      ['HEAD', 'blob', 200, 0.25],
      ['GET', 'blob', 307, 400], // past every bound: +Inf only
    ];
    for (const [method, route, status, s] of requests) {
      m.record(method, route, status, s);
      h.observe({ method, route }, s);
    }
    const got = samples(await ours.metrics());
    const want = samples(await theirs.metrics());
    for (const [k, v] of want) assert.equal(got.get(k), v, k);
    assert.equal(got.get('nixery_http_requests_total{method="GET",route="manifest",status="200"}'), 2);
    assert.equal(got.get('nixery_http_requests_total{method="GET",route="manifest",status="404"}'), 1);
    assert.equal(got.get('nixery_http_requests_total{method="GET",route="blob",status="307"}'), 1);
    const text = await ours.metrics();
    assert.match(text, /# TYPE nixery_http_requests_total counter/);
    assert.match(text, /# TYPE nixery_http_request_duration_seconds histogram/);
  });

  it('keeps at most 64 (method, route) pairs: later routes count as other', async () => {
    const r = new Registry();
    const m = new RequestMetrics(r);
    for (let i = 0; i < 200; i++) m.record('GET', `page${i}`, 401, 0.001);
    const got = samples(await r.metrics());
    const routes = new Set([...got.keys()].filter((k) => k.startsWith('nixery_http_requests_total')).map((k) => /route="([^"]*)"/.exec(k)?.[1]));
    assert.equal(routes.size, 65, '64 routes and other');
    assert.ok(routes.has('other'));
    const total = [...got].filter(([k]) => k.startsWith('nixery_http_requests_total')).reduce((n, [, v]) => n + v, 0);
    assert.equal(total, 200, 'every request counted');
  });
});
