import { open } from 'node:fs/promises';
import { CliError, EXIT_USAGE } from './errors';
import type { LocalBlob, LocalManifest } from './image';
import type { RegistryAuth } from './registry-auth';

/** Where an image is pushed: `REGISTRY/REPO[:TAG]`. */
export interface PushTarget {
  /** `http://host:port` or `https://host`. */
  base: string;
  /** `host[:port]`, as Docker config files key credentials. */
  host: string;
  repo: string;
  tag: string;
}

const REPO_RE = /^[a-z0-9]+(?:(?:\.|__?|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|__?|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Loopback registries are spoken to over plain HTTP, as Docker does; others over HTTPS unless `plainHttp`. */
function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\./.test(name);
}

/** Parses `REGISTRY/REPO[:TAG]` (the registry part is a host, with a port if any). */
export function parseTarget(text: string, opts: { plainHttp: boolean; defaultTag: string }): PushTarget {
  const slash = text.indexOf('/');
  if (slash <= 0) throw new CliError(`${text}: the target must be REGISTRY/REPO[:TAG]`, EXIT_USAGE);
  const host = text.slice(0, slash);
  let rest = text.slice(slash + 1);
  let tag = opts.defaultTag;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(host)) throw new CliError(`${host}: not a registry host`, EXIT_USAGE);
  if (!REPO_RE.test(rest)) throw new CliError(`${rest}: not a repository name`, EXIT_USAGE);
  if (!TAG_RE.test(tag)) throw new CliError(`${tag}: not a tag`, EXIT_USAGE);
  const scheme = opts.plainHttp || isLoopback(host) ? 'http' : 'https';
  return { base: `${scheme}://${host}`, host, repo: rest, tag };
}

/** Bound on one request to the registry. */
const REQUEST_TIMEOUT_MS = 300_000;

/** What a blob push did. */
export type BlobOutcome = 'skipped' | 'uploaded';

/**
 * A small client of the distribution API for pushing: HEAD a blob, upload
 * it (monolithic POST + PUT, or POST + PATCH chunks + PUT above the chunk
 * size), PUT a manifest. Every request is bounded and answers 401
 * challenges once (see RegistryAuth); a refusal is a CliError naming the
 * request, the status and the registry's error body.
 */
export class RegistryClient {
  constructor(
    private readonly target: PushTarget,
    private readonly auth: RegistryAuth,
    private readonly chunkSize: number,
  ) {}

  private async send(method: string, url: string, headers: Record<string, string>, body: Buffer | undefined, expect: number[]): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const auth = this.auth.authorization;
      const res = await fetch(url, {
        method,
        headers: { ...headers, ...(auth ? { Authorization: auth } : {}) },
        ...(body ? { body } : {}),
        redirect: 'follow',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      }).catch((e: unknown) => {
        const cause = e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e);
        throw new CliError(`cannot reach the registry ${this.target.base} (${method} ${new URL(url).pathname}): ${cause}`);
      });
      if (res.status === 401 && attempt === 0) {
        await this.auth.answer(res);
        continue;
      }
      if (expect.includes(res.status)) return res;
      // A HEAD answer has no body: a refusal is asked again as GET for the registry's error body (a 401/403 sends no blob).
      const refusedHead = method === 'HEAD' && (res.status === 401 || res.status === 403);
      const text =
        method !== 'HEAD'
          ? await res.text().catch(() => '')
          : refusedHead
            ? await fetch(url, { headers: { ...(auth ? { Authorization: auth } : {}) }, signal: AbortSignal.timeout(30_000) }).then((r) => r.text(), () => '')
            : '';
      throw new CliError(`the registry refused ${method} ${new URL(url).pathname}: ${res.status} ${res.statusText}${text ? `: ${text.trim()}` : ''}`);
    }
  }

  private url(path: string): string {
    return `${this.target.base}/v2/${this.target.repo}/${path}`;
  }

  /** The upload URL a 202 names (the Location header, relative or absolute). */
  private location(res: Response): string {
    const loc = res.headers.get('location');
    if (!loc) throw new CliError(`the registry answered ${res.status} without a Location for the upload`);
    return new URL(loc, this.target.base).toString();
  }

  /** Whether the registry has the blob already (HEAD: 200 yes, 404 no). */
  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.send('HEAD', this.url(`blobs/${digest}`), {}, undefined, [200, 404]);
    return res.status === 200;
  }

  /** Pushes a blob unless the registry has it. */
  async pushBlob(blob: LocalBlob): Promise<BlobOutcome> {
    if (await this.hasBlob(blob.digest)) return 'skipped';
    const started = await this.send('POST', this.url('blobs/uploads/'), { 'Content-Length': '0' }, undefined, [202]);
    let upload = this.location(started);
    const fh = await open(blob.file, 'r');
    try {
      const read = async (start: number, length: number): Promise<Buffer> => {
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, start);
        if (bytesRead !== length) throw new CliError(`${blob.file} is shorter than its ${blob.size} bytes`);
        return buf;
      };
      const octets = { 'Content-Type': 'application/octet-stream' };
      let body: Buffer | undefined;
      if (blob.size <= this.chunkSize) {
        body = await read(0, blob.size);
      } else {
        for (let start = 0; start < blob.size; start += this.chunkSize) {
          const chunk = await read(start, Math.min(this.chunkSize, blob.size - start));
          const res = await this.send(
            'PATCH',
            upload,
            { ...octets, 'Content-Length': String(chunk.length), 'Content-Range': `${start}-${start + chunk.length - 1}` },
            chunk,
            [202],
          );
          upload = this.location(res);
        }
      }
      const done = new URL(upload);
      done.searchParams.set('digest', blob.digest);
      await this.send('PUT', done.toString(), { ...octets, 'Content-Length': String(body?.length ?? 0) }, body, [201]);
      return 'uploaded';
    } finally {
      await fh.close();
    }
  }

  /** PUTs the manifest under the target's tag; resolves with the digest the registry names. */
  async putManifest(manifest: LocalManifest): Promise<string> {
    const res = await this.send('PUT', this.url(`manifests/${this.target.tag}`), { 'Content-Type': manifest.mediaType }, Buffer.from(manifest.body), [201]);
    return res.headers.get('docker-content-digest') ?? manifest.digest;
  }
}
