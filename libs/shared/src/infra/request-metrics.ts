import type { Metric, Registry } from 'prom-client';

/** Upper bounds (seconds) of the request duration histogram's buckets. */
const BUCKETS = [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300] as const;
/** (method, route) pairs one process keeps apart; past this many, new routes count as `other` (routes of unknown paths are client text). */
const MAX_ROUTES = 64;
const REQUESTS = { name: 'nixery_http_requests_total', help: 'HTTP requests by route and status', type: 'counter', aggregator: 'sum' } as const;
const DURATION = { name: 'nixery_http_request_duration_seconds', help: 'HTTP request latency by route', type: 'histogram', aggregator: 'sum' } as const;

/** One (method, route)'s requests so far. */
interface RouteTally {
  method: string;
  route: string;
  /** Requests per bucket (not cumulative); the last one is past every bound (+Inf). */
  buckets: number[];
  sum: number;
  count: number;
  statuses: Map<number, number>;
}

type Sample = { labels: Record<string, string | number>; value: number; metricName?: string };

/**
 * The gateway's HTTP metrics, `nixery_http_requests_total` (by method, route
 * and status) and `nixery_http_request_duration_seconds` (by method and
 * route), counted here and rendered by the prom-client registry (issue 15).
 *
 * prom-client builds and looks up a label string and checks every label on
 * each `inc` and `observe`; for these two metrics of a warm manifest that
 * measured as a sixth of the gateway's throughput. Here a request is three
 * map lookups on values the process already holds (the method and route
 * strings, the status number) and a few additions. The registry asks for the
 * values when /metrics is scraped, in the shape its own metrics give.
 */
export class RequestMetrics {
  private readonly tallies = new Map<string, Map<string, RouteTally>>();
  private routes = 0;

  constructor(registry: Registry) {
    // The registry renders any object with its metrics' name, help, type and get(); prom-client types only its own classes.
    const register = (family: typeof REQUESTS | typeof DURATION, values: () => Sample[]) =>
      registry.registerMetric({ ...family, get: async () => ({ ...family, values: values() }), reset: () => this.reset() } as unknown as Metric);
    register(REQUESTS, () => this.counted());
    register(DURATION, () => this.timed());
  }

  /** Counts one answered request and its duration. */
  record(method: string, route: string, status: number, seconds: number): void {
    let byRoute = this.tallies.get(method);
    if (!byRoute) this.tallies.set(method, (byRoute = new Map()));
    let t = byRoute.get(route);
    if (!t) {
      if (this.routes >= MAX_ROUTES && route !== 'other') return this.record(method, 'other', status, seconds);
      this.routes++;
      byRoute.set(route, (t = { method, route, buckets: new Array<number>(BUCKETS.length + 1).fill(0), sum: 0, count: 0, statuses: new Map() }));
    }
    let i = 0;
    while (i < BUCKETS.length && seconds > (BUCKETS[i] as number)) i++;
    t.buckets[i] = (t.buckets[i] as number) + 1;
    t.sum += seconds;
    t.count++;
    t.statuses.set(status, (t.statuses.get(status) ?? 0) + 1);
  }

  private reset(): void {
    this.tallies.clear();
    this.routes = 0;
  }

  private all(): RouteTally[] {
    return [...this.tallies.values()].flatMap((byRoute) => [...byRoute.values()]);
  }

  private counted(): Sample[] {
    return this.all().flatMap((t) => [...t.statuses].map(([status, value]) => ({ labels: { method: t.method, route: t.route, status: String(status) }, value })));
  }

  private timed(): Sample[] {
    return this.all().flatMap((t) => {
      const labels = { method: t.method, route: t.route };
      let below = 0;
      const buckets = t.buckets.map((n, i) => {
        below += n;
        return { labels: { le: i < BUCKETS.length ? (BUCKETS[i] as number) : '+Inf', ...labels }, value: below, metricName: `${DURATION.name}_bucket` };
      });
      return [...buckets, { labels, value: t.sum, metricName: `${DURATION.name}_sum` }, { labels, value: t.count, metricName: `${DURATION.name}_count` }];
    });
  }
}
