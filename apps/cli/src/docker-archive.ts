import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { digestHex } from '@nixery/shared';
import { pack as tarPack } from 'tar-stream';
import { CliError, EXIT_USAGE } from './errors';
import type { LocalImage } from './image';

/** Adds one member to the archive, streaming from `file` or from `body`. */
function addMember(pack: ReturnType<typeof tarPack>, name: string, size: number, from: { file: string } | { body: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve()));
    if ('body' in from) entry.end(from.body);
    else createReadStream(from.file).on('error', reject).pipe(entry);
  });
}

/**
 * Writes `image` as a `docker load` archive at `file`: the config as
 * `<hex>.json`, each layer as `<hex>.tar.gz` (Docker decompresses layers on
 * load and checks their diff ids), and `manifest.json` tagging it `repoTag`.
 * Streamed into a file beside `file` and renamed into place.
 */
export async function writeDockerArchive(image: LocalImage, file: string, repoTag: string): Promise<void> {
  const staging = `${file}.partial-${process.pid}`;
  const pack = tarPack();
  const written = pipeline(pack, createWriteStream(staging, { flags: 'wx' }));
  try {
    const configName = `${digestHex(image.config.digest)}.json`;
    await addMember(pack, configName, image.config.size, { file: image.config.file });
    const layerNames: string[] = [];
    for (const l of image.layers) {
      const name = `${digestHex(l.digest)}.tar.gz`;
      await addMember(pack, name, l.size, { file: l.file });
      layerNames.push(name);
    }
    const manifest = JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: layerNames }]);
    await addMember(pack, 'manifest.json', Buffer.byteLength(manifest), { body: manifest });
    pack.finalize();
    await written;
    await rename(staging, file).catch((e: NodeJS.ErrnoException) => {
      throw new CliError(`cannot write ${file}: ${e.code ?? e.message}`, EXIT_USAGE);
    });
  } catch (e) {
    pack.destroy();
    await written.catch(() => undefined);
    await rm(staging, { force: true });
    throw e;
  }
}
