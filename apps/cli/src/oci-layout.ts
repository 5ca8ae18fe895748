import { copyFile, link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Digest, MediaTypes, digestHex, parseDigest } from '@nixery/shared';
import { CliError, EXIT_USAGE } from './errors';
import type { LocalBlob, LocalImage } from './image';

/** The annotation an OCI layout names its images' tags with. */
const REF_NAME = 'org.opencontainers.image.ref.name';

const blobPath = (dir: string, d: Digest) => path.join(dir, 'blobs', 'sha256', digestHex(d));

/** Puts `file` at `to`: a hard link when it can (same filesystem), else a copy. */
async function place(file: string, to: string): Promise<void> {
  await link(file, to).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code === 'EEXIST') return;
    await copyFile(file, to);
  });
}

/**
 * Writes `image` as an OCI image layout directory at `dir` (which must not
 * exist): `oci-layout`, `index.json` naming the image's OCI manifest (the
 * pipeline's OCI variant, which the registry serves for an OCI Accept) under `tag`, and
 * every blob under `blobs/sha256/`. Written beside `dir` and renamed into
 * place, so `dir` appears complete or not at all. Returns the manifest written.
 */
export async function writeOciLayout(image: LocalImage, dir: string, tag: string): Promise<{ digest: Digest; size: number }> {
  const manifest = image.oci;
  const staging = `${dir}.partial-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(path.join(staging, 'blobs', 'sha256'), { recursive: true });
  try {
    for (const blob of [image.config, ...image.layers]) await place(blob.file, blobPath(staging, blob.digest));
    await writeFile(blobPath(staging, manifest.digest), manifest.body);
    const size = Buffer.byteLength(manifest.body);
    const index = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        {
          mediaType: manifest.mediaType,
          digest: manifest.digest,
          size,
          platform: { architecture: image.architecture, os: 'linux' },
          annotations: { [REF_NAME]: tag },
        },
      ],
    };
    await writeFile(path.join(staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(path.join(staging, 'index.json'), JSON.stringify(index));
    await rename(staging, dir).catch((e: NodeJS.ErrnoException) => {
      throw new CliError(`cannot write ${dir}: ${e.code === 'ENOTEMPTY' || e.code === 'EEXIST' ? 'it exists already' : e.code ?? e.message}`, EXIT_USAGE);
    });
    return { digest: manifest.digest, size };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  annotations?: Record<string, string>;
}

async function readJson(file: string, what: string): Promise<unknown> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read ${what} (${file}): ${e.code ?? e.message}`, EXIT_USAGE);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError(`${what} (${file}) is not JSON`, EXIT_USAGE);
  }
}

function blobOf(dir: string, d: Descriptor, what: string): LocalBlob {
  const digest = d.digest ? parseDigest(d.digest) : null;
  if (!digest || typeof d.size !== 'number' || !d.mediaType) throw new CliError(`${what} in ${dir} has no valid digest, size or media type`, EXIT_USAGE);
  return { digest, size: d.size, mediaType: d.mediaType, file: blobPath(dir, digest) };
}

/**
 * Reads the image tagged `tag` (or the only image) from the OCI layout `dir`,
 * for `nixery push --from`. Digests are parsed before any path is made from
 * them, so no blob path leaves `dir/blobs/sha256`.
 */
export async function readOciLayout(dir: string, tag: string | undefined): Promise<LocalImage> {
  const index = (await readJson(path.join(dir, 'index.json'), 'the OCI layout index')) as { manifests?: Descriptor[] };
  const all = index.manifests ?? [];
  const chosen = tag === undefined ? (all.length === 1 ? all[0] : undefined) : all.find((m) => m.annotations?.[REF_NAME] === tag);
  if (!chosen) throw new CliError(`${dir} holds ${tag === undefined ? `${all.length} images: name one with --tag` : `no image tagged ${tag}`}`, EXIT_USAGE);
  const desc = blobOf(dir, chosen, 'the manifest');
  const body = await readFile(desc.file, 'utf8');
  const manifest = JSON.parse(body) as { config?: Descriptor; layers?: Descriptor[] };
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new CliError(`the manifest in ${dir} is not an image manifest (an index?)`, EXIT_USAGE);
  const config = blobOf(dir, manifest.config, 'the config');
  const configJson = (await readJson(config.file, 'the image config')) as { architecture?: string };
  const read = { body, digest: desc.digest, mediaType: desc.mediaType };
  return {
    manifest: read,
    oci: read,
    config,
    layers: manifest.layers.map((l, i) => blobOf(dir, l, `layer ${i}`)),
    architecture: configJson.architecture ?? 'amd64',
  };
}
