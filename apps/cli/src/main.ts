/**
 * `nixery build NAME` and `nixery push NAME REGISTRY/REPO[:TAG]`: images
 * built without the server, on the workers' pipeline (issue 17). Progress on
 * stderr, the digest on stdout; exit 1 when the build or push fails, 2 for a
 * command line it cannot use.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, ConfigError, loadConfig } from '@nixery/shared';
import pino from 'pino';
import { buildLocalImage } from './build';
import { dockerConfigCreds, parseCreds } from './credentials';
import { writeDockerArchive } from './docker-archive';
import { CliError, EXIT_FAILED, EXIT_USAGE } from './errors';
import type { LocalImage } from './image';
import { readOciLayout, writeOciLayout } from './oci-layout';
import { popularityChoice } from './popularity';
import { createProgress } from './progress';
import { pushImage } from './push';
import { parseTarget } from './registry-client';

const USAGE = `usage:
  nixery build NAME [-o PATH] [--format oci|docker-archive] [--platform linux/amd64|linux/arm64]
               [--tag TAG] [--popularity local|none|URL|FILE]
  nixery push NAME REGISTRY/REPO[:TAG] [--from OCI-LAYOUT] [--creds USER:PASS] [--plain-http]
               [--chunk-size BYTES] [--platform ...] [--tag TAG] [--popularity ...]
The package source, Nix settings and layer budget come from the registry's own
variables (NIXERY_PKGS_PATH, NIXERY_PKGS_REPO, NIXERY_CHANNEL, NIX_POPULARITY_URL, ...).`;

const OPTIONS = {
  output: { type: 'string', short: 'o' },
  format: { type: 'string', default: 'oci' },
  platform: { type: 'string' },
  tag: { type: 'string' },
  popularity: { type: 'string' },
  from: { type: 'string' },
  creds: { type: 'string' },
  'plain-http': { type: 'boolean', default: false },
  'chunk-size': { type: 'string', default: String(16 * 1024 * 1024) },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

const progress = createProgress(process.stderr);

/** Builds NAME into a scratch directory, hands the image to `use`, and removes the scratch directory. */
async function withBuiltImage<T>(config: Config, name: string, v: Values, scratchNear: string, use: (image: LocalImage) => Promise<T>): Promise<T> {
  // Nix and pipeline logs go to stderr too, warnings and worse unless LOG_LEVEL says otherwise.
  const log = pino({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, name: 'nixery-cli' }, pino.destination(2));
  const work = await mkdtemp(path.join(scratchNear, '.nixery-build-'));
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const image = await buildLocalImage(
      config,
      { name, tag: v.tag ?? 'latest', ...(v.platform ? { platform: v.platform } : {}), popularity: popularityChoice(v.popularity, config) },
      work,
      { log, progress, signal: abort.signal },
    );
    progress.line(`built ${name}: manifest ${image.manifest.digest} (Docker schema 2, as the registry serves it), revision ${image.revision}`);
    return await use(image);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await rm(work, { recursive: true, force: true });
  }
}

async function build(config: Config, positionals: string[], v: Values): Promise<string> {
  const [name, extra] = positionals;
  if (!name || extra) throw new CliError(USAGE, EXIT_USAGE);
  if (v.format !== 'oci' && v.format !== 'docker-archive') throw new CliError('--format must be oci or docker-archive', EXIT_USAGE);
  const tag = v.tag ?? 'latest';
  const out = path.resolve(v.output ?? `${name.replaceAll('/', '-')}${v.format === 'oci' ? '.oci' : '.tar'}`);
  if (existsSync(out)) throw new CliError(`${out} exists already: give another -o`, EXIT_USAGE);
  return withBuiltImage(config, name, v, path.dirname(out), async (image) => {
    if (v.format === 'docker-archive') {
      await writeDockerArchive(image, out, `${name}:${tag}`);
      progress.line(`wrote a docker load archive to ${out} (${name}:${tag})`);
      return image.manifest.digest;
    }
    const written = await writeOciLayout(image, out, tag);
    progress.line(`wrote an OCI layout to ${out} (tag ${tag}, OCI manifest ${written.digest})`);
    return written.digest;
  });
}

async function push(config: Config, positionals: string[], v: Values): Promise<string> {
  const [name, targetText, extra] = positionals;
  if (!name || !targetText || extra) throw new CliError(USAGE, EXIT_USAGE);
  const chunkSize = Number(v['chunk-size']);
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new CliError('--chunk-size must be a positive number of bytes', EXIT_USAGE);
  const target = parseTarget(targetText, { plainHttp: v['plain-http'] ?? false, defaultTag: v.tag ?? 'latest' });
  const creds = v.creds ? parseCreds(v.creds) : await dockerConfigCreds(config.dockerConfigDir, target.host);
  const send = async (image: LocalImage) => {
    progress.line(`pushing to ${target.base}/${target.repo}:${target.tag}${creds ? ` as ${creds.user}` : ''}`);
    const report = await pushImage(image, target, { creds, chunkSize, progress });
    progress.line(
      `pushed ${report.digest}: uploaded ${report.uploaded.bytes} bytes in ${report.uploaded.blobs} blobs, ` +
        `skipped ${report.skipped.bytes} bytes in ${report.skipped.blobs} blobs the registry had`,
    );
    return report.digest;
  };
  if (v.from) return send(await readOciLayout(path.resolve(v.from), v.tag));
  return withBuiltImage(config, name, v, os.tmpdir(), send);
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new CliError(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`, EXIT_USAGE);
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || !command) {
    process.stderr.write(`${USAGE}\n`);
    return parsed.values.help ? 0 : EXIT_USAGE;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    throw e instanceof ConfigError ? new CliError(e.message, EXIT_USAGE) : e;
  }
  let digest: string;
  if (command === 'build') digest = await build(config, rest, parsed.values);
  else if (command === 'push') digest = await push(config, rest, parsed.values);
  else throw new CliError(`unknown command ${command}\n${USAGE}`, EXIT_USAGE);
  process.stdout.write(`${digest}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    progress.end();
    if (e instanceof CliError) process.stderr.write(`nixery: ${e.message}\n`);
    else process.stderr.write(`nixery: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = e instanceof CliError ? e.exitCode : EXIT_FAILED;
  },
);
