import { Readable } from 'node:stream';
import path from 'node:path';
import {
  type BuildJobData,
  type Config,
  type Digest,
  type ImageSpec,
  type Logger,
  type NixSystem,
  Failed,
  MediaTypes,
  SourceResolver,
  blobKey,
  buildImage,
  buildKey,
  checkNixBuilds,
  createStorage,
  describeFailure,
  nixPreparation,
  parseImage,
  putStaged,
  systemSupport,
  withExtraPlatforms,
} from '@nixery/shared';
import { CliError, EXIT_USAGE } from './errors';
import type { LocalImage } from './image';
import { MemoryLayerStore } from './local-store';
import { type PopularityChoice, loadPopularity } from './popularity';
import type { Progress } from './progress';

/** `--platform` values and the Nix system each builds for. */
export const PLATFORMS: Record<string, NixSystem> = { 'linux/amd64': 'x86_64-linux', 'linux/arm64': 'aarch64-linux' };

/** What to build. */
export interface BuildRequest {
  /** The image name as a registry path (`shell/git`, `arm64/hello`). */
  name: string;
  /** The tag: for a git package source the ref to build from; default `latest`. */
  tag: string;
  /** `linux/amd64` or `linux/arm64`; none: what the name says (amd64 unless it starts with `arm64/`). */
  platform?: string;
  popularity: PopularityChoice;
}

/** The parts of the configuration a local build uses (the registry's own variables). */
export type BuildSettings = Pick<Config, 'source' | 'nixDir' | 'nix' | 'nixTimeoutSeconds' | 'emulatedNixTimeoutSeconds' | 'layerBudget' | 'packConcurrency' | 'popcount'>;

/**
 * The Nix invocation and time limit for building `system` here, as a worker
 * has them (issue 13): natively, or through qemu user emulation with Nix's
 * `extra-platforms` and NIXERY_EMULATED_NIX_TIMEOUT; a system this machine
 * cannot build is a plain error naming why.
 */
function nixForSystem(settings: BuildSettings, system: NixSystem): { nix: BuildSettings['nix']; timeoutSeconds: number } {
  const support = systemSupport(system);
  if (!support.ok) throw new CliError(`this machine cannot build ${system}: ${support.reason}`);
  if (!support.emulated) return { nix: settings.nix, timeoutSeconds: settings.nixTimeoutSeconds };
  return { nix: withExtraPlatforms(settings.nix, [system]), timeoutSeconds: settings.emulatedNixTimeoutSeconds };
}

/** The name parsed exactly as the registry parses it, then set to the asked platform. */
export function imageSpecOf(req: Pick<BuildRequest, 'name' | 'tag' | 'platform'>): ImageSpec {
  const parsed = parseImage(req.name, req.tag);
  if (!parsed.ok) throw new CliError(`${req.name}:${req.tag}: ${parsed.error.reason}`, EXIT_USAGE);
  if (req.platform === undefined) return parsed.spec;
  const system = PLATFORMS[req.platform];
  if (!system) throw new CliError(`--platform must be one of ${Object.keys(PLATFORMS).join(', ')}`, EXIT_USAGE);
  if (/^(arm64|amd64)\//.test(req.name) && system !== parsed.spec.system) {
    throw new CliError(`the name ${req.name} and --platform ${req.platform} ask for different systems`, EXIT_USAGE);
  }
  return { ...parsed.spec, system, architecture: system === 'aarch64-linux' ? 'arm64' : 'amd64' };
}

/**
 * Builds an image on this machine with the workers' pipeline (`buildImage`:
 * Nix, closure graph, layering, packing) and no Redis: the layer cache is a
 * map, storage a filesystem directory `workDir` (blobs at
 * `workDir/layers/<hex>`). The source is pinned as the registry pins it, so
 * the same name, revision, platform and popularity table give the same bytes
 * and the same manifest digest the registry serves.
 */
export async function buildLocalImage(
  settings: BuildSettings,
  req: BuildRequest,
  workDir: string,
  io: { log: Logger; progress: Progress; signal: AbortSignal },
): Promise<LocalImage & { revision: string }> {
  const spec = imageSpecOf(req);
  const { nix, timeoutSeconds } = nixForSystem(settings, spec.system);
  const resolver = new SourceResolver(settings.source, { ttlSeconds: 0, fallbackSeconds: 0, timeoutMs: 30_000, log: io.log, watchPaths: false });
  let job: BuildJobData;
  try {
    io.progress.line(`resolving the package source (${resolver.describe()})`);
    const source = await resolver.resolve(spec.tag);
    job = { buildKey: buildKey(spec, source), image: spec, source };
  } catch (e) {
    throw e instanceof Failed ? new CliError(describeFailure(e.failure)) : e;
  } finally {
    resolver.close();
  }
  io.progress.line(`building ${spec.packages.join(' ')} for ${spec.system} from revision ${job.source.revision}`);
  const storage = createStorage({ backend: 'filesystem', path: workDir });
  const outcome = await buildImage(
    {
      storage,
      layerCache: new MemoryLayerStore(),
      log: io.log,
      prepare: nixPreparation({ nixDir: settings.nixDir, nix, timeoutMs: timeoutSeconds * 1000 }),
      popularity: () => loadPopularity(req.popularity, { config: { ...settings, nix }, source: job.source, system: spec.system, log: io.log, signal: io.signal }),
      layerBudget: settings.layerBudget,
      packConcurrency: settings.packConcurrency,
    },
    job,
    (p) => io.progress.build(p),
    io.signal,
  ).catch((e: unknown) => {
    throw e instanceof Failed ? new CliError(describeFailure(e.failure)) : e;
  });
  if (!outcome.ok) {
    // As the worker does: a Nix failure is blamed on the image only when Nix can build here at all.
    if (outcome.failure.kind === 'nix_failed') {
      const health = await checkNixBuilds(nix, { systems: [spec.system] });
      if (!health.ok) throw new CliError(`Nix cannot build on this machine: ${health.cause}. Fix: ${health.hint}`);
    }
    throw new CliError(describeFailure(outcome.failure));
  }
  if (!('image' in outcome)) throw new CliError('internal: a build without a manifest cache cannot share an image');
  const { documents, layers } = outcome.image;
  await putStaged(storage, Readable.from([Buffer.from(documents.config.body)]), blobKey, MediaTypes.dockerConfig);
  io.progress.build({ stage: 'done' });
  const file = (d: Digest) => path.join(workDir, blobKey(d));
  return {
    manifest: { body: documents.manifest.body, digest: documents.manifest.digest, mediaType: documents.manifest.mediaType },
    oci: { body: documents.oci.body, digest: documents.oci.digest, mediaType: documents.oci.mediaType },
    config: { digest: documents.config.digest, size: documents.config.size, mediaType: MediaTypes.dockerConfig, file: file(documents.config.digest) },
    layers: layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: MediaTypes.dockerLayer, file: file(l.digest) })),
    architecture: spec.architecture,
    revision: job.source.revision,
  };
}
