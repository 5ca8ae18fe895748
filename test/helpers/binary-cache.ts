/**
 * A real Nix binary cache and channel on loopback, for the popularity job:
 * store paths of the bundled package set copied with `nix copy --to file://DIR`
 * (narinfo files with real `References:` lines), a store-paths list (xz, as
 * channels publish it) and a git-revision file, served by a small HTTP server
 * that counts requests.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { NIX_ENV } from './nix-env';
import { REPO } from './nixery';
import { runChecked } from './proc';

const NIX_OPTS = ['--option', 'substituters', ''];

/** Builds attributes of the bundled set; returns attr -> output path. */
export async function buildBundled(attrs: readonly string[]): Promise<Record<string, string>> {
  const args = [...NIX_OPTS, '--no-out-link', path.join(REPO, 'nix/pkgs'), ...attrs.flatMap((a) => ['-A', a])];
  const { stdout } = await runChecked('nix-build', args, { timeoutMs: 300_000, env: NIX_ENV });
  const outs = stdout.split('\n').filter(Boolean);
  if (outs.length !== attrs.length) throw new Error(`nix-build printed ${outs.length} paths for ${attrs.length} attributes`);
  return Object.fromEntries(attrs.map((a, i) => [a, outs[i]!]));
}

/** The closure of `paths` (nix-store --query --requisites). */
export async function closureOf(paths: readonly string[]): Promise<string[]> {
  const { stdout } = await runChecked('nix-store', ['--query', '--requisites', ...paths], { env: NIX_ENV });
  return stdout.split('\n').filter(Boolean).sort();
}

/** Paths that refer to `p` (nix-store --query --referrers), `p` itself included when it refers to itself. */
export async function referrersOf(p: string): Promise<string[]> {
  const { stdout } = await runChecked('nix-store', ['--query', '--referrers', p], { env: NIX_ENV });
  return stdout.split('\n').filter(Boolean);
}

/** Copies `paths` and their closures into a file:// binary cache at `dir` (uncompressed NARs: fast). */
export async function makeBinaryCache(dir: string, paths: readonly string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await runChecked(
    'nix',
    ['copy', '--extra-experimental-features', 'nix-command', ...NIX_OPTS, '--to', `file://${dir}?compression=none`, ...paths],
    { timeoutMs: 300_000, env: NIX_ENV },
  );
}

/** xz-compresses text (as channels publish store-paths.xz). */
export async function xz(text: string): Promise<Buffer> {
  const { stdout } = await runChecked('bash', ['-c', 'xz -c | base64 -w0'], { input: text });
  return Buffer.from(stdout, 'base64');
}

/** A loopback HTTP server: fixed routes first, then files under `root` (if any). */
export interface StaticServer {
  url: string;
  /** Requests per path. */
  hits: Map<string, number>;
  /** Requests whose path ends with `suffix`. */
  count(suffix: string): number;
  setRoute(p: string, body: Buffer | string, status?: number): void;
  close(): Promise<void>;
}

/** Starts a loopback HTTP server serving `routes` and the files under `root`; other paths answer `fallback` (default 404). */
export async function serveStatic(opts: { root?: string; routes?: Record<string, Buffer | string>; fallback?: { status: number; body: string } }): Promise<StaticServer> {
  const routes = new Map<string, { body: Buffer; status: number }>();
  for (const [p, b] of Object.entries(opts.routes ?? {})) routes.set(p, { body: Buffer.from(b), status: 200 });
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    hits.set(p, (hits.get(p) ?? 0) + 1);
    const route = routes.get(p);
    const answer = (status: number, body: Buffer | string) => {
      res.writeHead(status, { 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (route) return answer(route.status, route.body);
    const fallback = () => (opts.fallback ? answer(opts.fallback.status, opts.fallback.body) : answer(404, 'not found'));
    if (!opts.root || p.includes('..')) return fallback();
    readFile(path.join(opts.root, p)).then((b) => answer(200, b), fallback);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    count: (suffix) => [...hits].filter(([p]) => p.endsWith(suffix)).reduce((n, [, c]) => n + c, 0),
    setRoute: (p, body, status = 200) => routes.set(p, { body: Buffer.from(body), status }),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A channel + binary cache on loopback made from the bundled set. */
export interface LoopbackChannel {
  server: StaticServer;
  /** NIXERY_CHANNEL_URL (the channel is named `test`). */
  channelUrl: string;
  /** NIXERY_POPCOUNT_CACHE_URL. */
  cacheUrl: string;
  /** Store paths listed (valid ones; the list also holds one missing path and a junk line). */
  listed: string[];
  /** The listed path the cache does not have. */
  missing: string;
  revision: string;
}

/**
 * Builds `attrs` of the bundled set, copies their closures into a binary
 * cache under `dir`, writes the channel's store-paths list (the attrs' outputs,
 * one path the cache lacks and a junk line) and serves it all on loopback.
 */
export async function startLoopbackChannel(dir: string, attrs: readonly string[]): Promise<LoopbackChannel> {
  const outs = [...new Set(Object.values(await buildBundled(attrs)))].sort();
  await makeBinaryCache(path.join(dir, 'cache'), outs);
  const missing = '/nix/store/0000000000000000000000000000000a-not-in-the-cache-1.0';
  const revision = 'a'.repeat(40);
  const list = [...outs, missing, 'this line is not a store path', ''].join('\n');
  await writeFile(path.join(dir, 'store-paths'), list);
  const server = await serveStatic({
    root: dir,
    routes: {
      '/channels/test/store-paths.xz': await xz(list),
      '/channels/test/git-revision': revision,
    },
  });
  return { server, channelUrl: `${server.url}/channels`, cacheUrl: `${server.url}/cache`, listed: outs, missing, revision };
}
