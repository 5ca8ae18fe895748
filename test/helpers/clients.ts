/**
 * Registry clients that need no daemon (skopeo, umoci), an OCI image layout
 * checker, and a reference registry (CNCF distribution, Debian
 * `docker-registry`) for side-by-side and harness tests.
 *
 * All talk plain HTTP to 127.0.0.1. Flags used:
 *   skopeo --insecure-policy copy --src-tls-verify=false docker://REF oci:DIR:TAG
 *   skopeo inspect --tls-verify=false --no-tags [--raw|--config] docker://REF
 *   umoci unpack --image DIR:TAG BUNDLE
 *   docker-registry serve CONFIG.yml   (filesystem storage, addr 127.0.0.1:PORT)
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest, type Digest } from '../../libs/shared/src/core/digest';
import {
  freePort,
  logTail,
  makeScratchDir,
  ProcessStartError,
  removeScratchDir,
  runChecked,
  startProcess,
  type RunResult,
} from './proc';

/** Options shared by the client wrappers. */
export interface ClientOptions {
  /** Command timeout. Default 300 000 ms. */
  timeoutMs?: number;
}

/** The tag of `host:port/name:tag`, or undefined when the reference has none (or is by digest). */
export function tagOf(ref: string): string | undefined {
  if (ref.includes('@')) return undefined;
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? ref.slice(colon + 1) : undefined;
}

/**
 * Copies `docker://<ref>` (e.g. `127.0.0.1:5000/shell:latest`) from a
 * plain-HTTP registry into the OCI layout `dir`, under `tag` (default: the
 * reference's tag, else `latest`). skopeo converts the manifest to OCI media
 * types, so manifest and config digests may differ from the registry's;
 * layer digests do not. Throws `CommandError` on failure.
 */
export function skopeoCopyToOci(
  ref: string,
  dir: string,
  opts: ClientOptions & { tag?: string } = {},
): Promise<RunResult> {
  const tag = opts.tag ?? tagOf(ref) ?? 'latest';
  return runChecked(
    'skopeo',
    ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:${tag}`],
    { timeoutMs: opts.timeoutMs ?? 300_000 },
  );
}

/**
 * Like `skopeoCopyToOci`, but picks `arch`'s image out of an index
 * (`skopeo --override-arch ARCH copy`, issue 13). Throws `CommandError` when
 * the index has no image of that architecture.
 */
export function skopeoCopyToOciForArch(ref: string, dir: string, arch: string, opts: ClientOptions & { tag?: string } = {}): Promise<RunResult> {
  const tag = opts.tag ?? tagOf(ref) ?? 'latest';
  return runChecked(
    'skopeo',
    ['--insecure-policy', '--override-arch', arch, 'copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:${tag}`],
    { timeoutMs: opts.timeoutMs ?? 300_000 },
  );
}

/** What `skopeoInspect` asks for: skopeo's summary, the raw manifest, or the image config. */
export type InspectMode = 'summary' | 'raw' | 'config';

/**
 * Runs `skopeo inspect` on `docker://<ref>` over plain HTTP and returns the
 * parsed JSON (summary by default; `raw` = the manifest exactly as served;
 * `config` = the image config). Throws `CommandError` on failure.
 */
export async function skopeoInspect(
  ref: string,
  opts: ClientOptions & { mode?: InspectMode } = {},
): Promise<unknown> {
  const mode = opts.mode ?? 'summary';
  const extra = mode === 'raw' ? ['--raw'] : mode === 'config' ? ['--config'] : [];
  const result = await runChecked(
    'skopeo',
    ['--insecure-policy', 'inspect', '--tls-verify=false', '--no-tags', ...extra, `docker://${ref}`],
    { timeoutMs: opts.timeoutMs ?? 120_000 },
  );
  return JSON.parse(result.stdout) as unknown;
}

/** The result of `umociUnpack`. */
export interface UnpackedBundle {
  /** Root filesystem of the unpacked image. */
  rootfs: string;
  /** The runtime-spec `config.json` umoci generated from the image config. */
  runtimeConfig: unknown;
}

/**
 * Unpacks image `tag` of OCI layout `ociDir` into the runtime bundle
 * `bundleDir` (must not exist yet) with `umoci unpack`, which applies every
 * layer and checks its diff-id. Throws `CommandError` on failure.
 */
export async function umociUnpack(
  ociDir: string,
  tag: string,
  bundleDir: string,
  opts: ClientOptions = {},
): Promise<UnpackedBundle> {
  await runChecked('umoci', ['unpack', '--image', `${ociDir}:${tag}`, bundleDir], {
    timeoutMs: opts.timeoutMs ?? 300_000,
  });
  const runtimeConfig = JSON.parse(await readFile(join(bundleDir, 'config.json'), 'utf8')) as unknown;
  return { rootfs: join(bundleDir, 'rootfs'), runtimeConfig };
}

// ---------------------------------------------------------------------------
// OCI image layout verification

/** An OCI content descriptor (the fields this checker uses). */
export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string };
}

/** An OCI (or Docker schema 2) image manifest. */
export interface OciManifest {
  schemaVersion: number;
  mediaType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
}

/** One image found by walking the layout's index. */
export interface OciLayoutImage {
  /** `org.opencontainers.image.ref.name` of the top-level index entry (the tag), if any. */
  refName: string | undefined;
  manifestDigest: Digest;
  manifest: OciManifest;
  /** The parsed image config blob. */
  config: unknown;
}

/** The outcome of `verifyOciLayout`. `problems` is empty when the layout is sound. */
export interface OciLayoutReport {
  index: unknown;
  images: OciLayoutImage[];
  /** Number of blob files whose content was hashed. */
  blobCount: number;
  /** Human-readable findings; each one is a defect. */
  problems: string[];
}

const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolvePromise(h.digest('hex')));
  });
}

function isDescriptor(x: unknown): x is OciDescriptor {
  if (typeof x !== 'object' || x === null) return false;
  const d = x as Record<string, unknown>;
  return typeof d.mediaType === 'string' && typeof d.digest === 'string' && typeof d.size === 'number';
}

function isManifest(x: unknown): x is OciManifest {
  if (typeof x !== 'object' || x === null) return false;
  const m = x as Record<string, unknown>;
  return m.schemaVersion === 2 && isDescriptor(m.config) && Array.isArray(m.layers) && m.layers.every(isDescriptor);
}

/**
 * Checks an OCI image layout directory:
 * - `oci-layout` says imageLayoutVersion 1.0.0 and `index.json` is an index;
 * - every file under `blobs/sha256/` hashes to its own name;
 * - every descriptor reachable from `index.json` (nested indexes, manifests,
 *   configs, layers) names an existing blob of exactly the declared size.
 * Returns the manifests and configs found; defects are listed in `problems`
 * (it only throws when `dir` cannot be read at all).
 */
export async function verifyOciLayout(dir: string): Promise<OciLayoutReport> {
  const problems: string[] = [];
  const blobsDir = join(dir, 'blobs');

  try {
    const layout = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion?: unknown };
    if (layout.imageLayoutVersion !== '1.0.0') {
      problems.push(`oci-layout: imageLayoutVersion is ${String(layout.imageLayoutVersion)}`);
    }
  } catch (e) {
    problems.push(`oci-layout: ${(e as Error).message}`);
  }

  // 1. Every blob's content matches its name.
  let blobCount = 0;
  const algs = await readdir(blobsDir).catch(() => [] as string[]);
  for (const alg of algs) {
    if (alg !== 'sha256') {
      problems.push(`blobs/${alg}: unsupported digest algorithm`);
      continue;
    }
    for (const name of await readdir(join(blobsDir, alg))) {
      blobCount += 1;
      const actual = await sha256File(join(blobsDir, alg, name));
      if (actual !== name) problems.push(`blobs/sha256/${name}: content hashes to ${actual}`);
    }
  }
  if (blobCount === 0) problems.push('blobs: no blobs');

  // 2. Every reachable descriptor points at a blob of the declared size.
  const readBlob = async (d: OciDescriptor, where: string): Promise<Buffer | null> => {
    const digest = parseDigest(d.digest);
    if (digest === null) {
      problems.push(`${where}: malformed digest ${d.digest}`);
      return null;
    }
    const path = join(blobsDir, 'sha256', digest.slice('sha256:'.length));
    const st = await stat(path).catch(() => null);
    if (st === null) {
      problems.push(`${where}: blob ${digest} missing`);
      return null;
    }
    if (st.size !== d.size) problems.push(`${where}: blob ${digest} is ${st.size} bytes, descriptor says ${d.size}`);
    return readFile(path);
  };

  const images: OciLayoutImage[] = [];
  const walkIndex = async (idx: unknown, where: string, refName: string | undefined): Promise<void> => {
    const manifests = (idx as { manifests?: unknown }).manifests;
    if (!Array.isArray(manifests)) {
      problems.push(`${where}: no manifests array`);
      return;
    }
    for (const [i, d] of manifests.entries()) {
      const here = `${where}.manifests[${i}]`;
      if (!isDescriptor(d)) {
        problems.push(`${here}: not a descriptor`);
        continue;
      }
      const ref = refName ?? d.annotations?.['org.opencontainers.image.ref.name'];
      const body = await readBlob(d, here);
      if (body === null) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        problems.push(`${here}: blob is not JSON`);
        continue;
      }
      if (INDEX_TYPES.has(d.mediaType)) {
        await walkIndex(parsed, `${here}(index)`, ref);
        continue;
      }
      if (!isManifest(parsed)) {
        problems.push(`${here}: not an image manifest`);
        continue;
      }
      const cfgBody = await readBlob(parsed.config, `${here}.config`);
      for (const [j, l] of parsed.layers.entries()) await readBlob(l, `${here}.layers[${j}]`);
      let config: unknown = null;
      if (cfgBody !== null) {
        try {
          config = JSON.parse(cfgBody.toString('utf8'));
        } catch {
          problems.push(`${here}.config: not JSON`);
        }
      }
      images.push({ refName: ref, manifestDigest: parseDigest(d.digest) as Digest, manifest: parsed, config });
    }
  };

  let index: unknown = null;
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as unknown;
    if ((index as { schemaVersion?: unknown }).schemaVersion !== 2) problems.push('index.json: schemaVersion is not 2');
    await walkIndex(index, 'index.json', undefined);
  } catch (e) {
    problems.push(`index.json: ${(e as Error).message}`);
  }
  if (images.length === 0) problems.push('index.json: no image manifests reachable');

  return { index, images, blobCount, problems };
}

// ---------------------------------------------------------------------------
// Reference registry (CNCF distribution 2.8, Debian package docker-registry)

/** A running reference registry. */
export interface DistributionRegistry {
  /** `127.0.0.1:PORT`, the host part of image references. */
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  /** The registry process's pid (benchmarks read its memory; issue 15). */
  readonly pid: number;
  /** Stops the registry and deletes its storage. Idempotent. */
  stop(): Promise<void>;
}

/** Options for `startDistributionRegistry`. */
export interface DistributionRegistryOptions {
  /** Executable. Default `docker-registry`. */
  bin?: string;
  /** How long to wait for `GET /v2/` to answer 200. Default 30 000 ms. */
  readyTimeoutMs?: number;
}

/** The YAML config of a loopback-only registry storing blobs under `dir/data`. */
export function distributionConfig(dir: string, port: number): string {
  return [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
}

/**
 * Starts `docker-registry serve` on a free loopback port with filesystem
 * storage in a fresh scratch dir; retries on a new port if the chosen one
 * was taken meanwhile.
 */
export async function startDistributionRegistry(opts: DistributionRegistryOptions = {}): Promise<DistributionRegistry> {
  const dir = await makeScratchDir('nixery-distribution-');
  const configFile = join(dir, 'config.yml');
  const logFile = join(dir, 'registry.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    await writeFile(configFile, distributionConfig(dir, port));
    try {
      const proc = await startProcess({
        name: 'docker-registry',
        cmd: opts.bin ?? 'docker-registry',
        args: ['serve', configFile],
        logFile,
        // The log line proves *this* process bound the port (another one could answer /v2/).
        ready: async () =>
          (await logTail(logFile, 1_000_000)).includes(`listening on 127.0.0.1:${port}`) &&
          (await fetch(`http://127.0.0.1:${port}/v2/`)).status === 200,
        readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
      });
      let stopping: Promise<void> | undefined;
      return {
        host: `127.0.0.1:${port}`,
        port,
        dir,
        logFile,
        pid: proc.pid,
        stop: () => {
          stopping ??= proc.stop().then(() => removeScratchDir(dir));
          return stopping;
        },
      };
    } catch (e) {
      if (e instanceof ProcessStartError && e.reason === 'exited' && attempt < 3) continue;
      await removeScratchDir(dir);
      throw e;
    }
  }
}
