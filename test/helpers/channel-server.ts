/**
 * A loopback stand-in for channels.nixos.org plus a nixpkgs tarball host
 * (node http, 127.0.0.1 only):
 *
 *   GET /<channel>/git-revision  -> the channel's current revision (40 hex)
 *   GET /<rev>.tar.gz            -> a tarball of a package set for that revision
 *
 * Tarballs are made from a directory (e.g. a copy of nix/pkgs) with one
 * top-level directory `nixpkgs-<rev>/`, as GitHub's archives have, which is
 * what builtins.fetchTarball unpacks. Point Nixery at it with
 * NIXERY_CHANNEL_URL and NIXERY_TARBALL_URL both set to `url`.
 */
import { randomBytes } from 'node:crypto';
import { cp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeScratchDir, removeScratchDir, runChecked } from './proc';

/** A running channel server. */
export interface ChannelServer {
  /** http://127.0.0.1:PORT (no trailing slash). */
  readonly url: string;
  /** Every request path served so far, in order. */
  readonly requests: string[];
  /** Makes `rev` downloadable as a tarball of directory `dir` (copied now). */
  addTarball(rev: string, dir: string): Promise<void>;
  /** Points `channel` at `rev`. */
  setChannel(channel: string, rev: string): void;
  /** While true, git-revision requests answer 503 (tarballs still work). */
  failing: boolean;
  stop(): Promise<void>;
}

/** A random 40-hex revision. */
export function randomRevision(): string {
  return randomBytes(20).toString('hex');
}

/** Starts a channel server on a free loopback port. */
export async function startChannelServer(): Promise<ChannelServer> {
  const scratch = await makeScratchDir('nixery-channel-');
  const channels = new Map<string, string>();
  const tarballs = new Map<string, Buffer>();
  const requests: string[] = [];
  const state = { failing: false };

  const server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0]!;
    requests.push(p);
    const send = (status: number, body: string | Buffer, type = 'text/plain') => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const rev = /^\/(.+)\/git-revision$/.exec(p);
    if (rev) {
      if (state.failing) return send(503, 'channel server is down\n');
      const r = channels.get(decodeURIComponent(rev[1]!));
      return r ? send(200, `${r}\n`) : send(404, 'no such channel\n');
    }
    const tar = /^\/([0-9a-f]{40})\.tar\.gz$/.exec(p);
    const t = tar && tarballs.get(tar[1]!);
    if (t) return send(200, t, 'application/gzip');
    return send(404, 'not found\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get failing() {
      return state.failing;
    },
    set failing(v: boolean) {
      state.failing = v;
    },
    async addTarball(rev, dir) {
      const top = `nixpkgs-${rev}`;
      const staging = join(scratch, rev);
      await cp(dir, join(staging, top), { recursive: true });
      const file = join(scratch, `${rev}.tar.gz`);
      await runChecked('tar', ['-C', staging, '-czf', file, top]);
      tarballs.set(rev, await readFile(file));
      await rm(staging, { recursive: true, force: true });
    },
    setChannel(channel, rev) {
      channels.set(channel, rev);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await removeScratchDir(scratch);
    },
  };
}
