import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { NIXERY_CLOSURE_BUDGET } from '../layering';
import { NIX_SYSTEMS, type NixSystem } from '../protocol/image-spec';
import { defaultPlatform, parsePlatforms } from '../protocol/platforms';
import { nixEnvironment, type NixInvocation } from '../nix/settings';
import type { PackageSourceConfig } from '../sources/resolver';
import type { StoreGcOptions } from '../nix/store-gc';
import { parseByteSize } from '../core/byte-size';
import type { StorageConfig } from '../storage/driver';
import { DEFAULT_POPCOUNT_SCHEDULE, type PopcountConfig, parsePopcountSchedule } from '../popularity/schedule';
import { type GcConfig, parseDurationMs } from '../collect/settings';
import { isIP } from 'node:net';
import { type AuthConfig, AuthEnv, authConfig } from './auth';

/** The one validated configuration object, read from the environment once at start-up. */
export interface Config {
  /** HTTP port of the gateway (PORT, default 8080). */
  port: number;
  /** Host to bind (HOST, default 0.0.0.0). */
  host: string;
  /** Redis URL (REDIS_URL); undefined means the single-node launcher starts an embedded redis-server. */
  redisUrl?: string;
  /** Prefix of every Redis key and BullMQ queue (NIXERY_REDIS_PREFIX, default "nixery"). */
  redisPrefix: string;
  /** Package source. */
  source: PackageSourceConfig;
  /** Directory holding prepare-image.nix / load-pkgs.nix (NIXERY_NIX_DIR, default <repo>/nix). */
  nixDir: string;
  /** Seconds a Nix build may run (NIX_TIMEOUT, default 60 as in Nixery). */
  nixTimeoutSeconds: number;
  /**
   * How every Nix command runs: extra options (NIXERY_NIX_OPTIONS, space
   * separated; default: no substituters for the bundled set) and an
   * environment whose NIX_CONFIG holds the project's own settings
   * (see nix/settings.ts for which settings win).
   */
  nix: NixInvocation;
  /** URL of a popularity JSON file used as a seed (NIX_POPULARITY_URL). */
  popularityUrl?: string;
  /** Storage settings (NIXERY_STORAGE_BACKEND, STORAGE_PATH, GCS_BUCKET, ...). */
  storage: StorageConfig;
  /**
   * Layers an image may have in all, the symlink layer included
   * (NIXERY_LAYER_BUDGET, default 95: Nixery's 94 closure layers + its symlink
   * layer). The closure gets `layerBudget - 1`. The one meaning of `layerBudget` everywhere.
   */
  layerBudget: number;
  /** Seconds a manifest request waits for its build before a 503 (NIXERY_BUILD_WAIT, default 300). */
  buildWaitSeconds: number;
  /** Build jobs one worker runs at once (WORKER_CONCURRENCY, default 1). */
  workerConcurrency: number;
  /** Nix systems this worker builds for (NIXERY_WORKER_SYSTEMS, comma separated, default the host's). */
  workerSystems: NixSystem[];
  /** Layers packed at once within one build (NIXERY_PACK_CONCURRENCY, default the number of cores). */
  packConcurrency: number;
  /** Seconds a layer lock lives without renewal (NIXERY_LAYER_LOCK_TTL, default 30). */
  layerLockTtlSeconds: number;
  /** Seconds a resolved git ref or channel revision is reused (NIXERY_RESOLVE_TTL, default 60). */
  resolveTtlSeconds: number;
  /** Seconds the last known git refs / channel revision are still used while resolving fails (NIXERY_RESOLVE_FALLBACK_TTL, default 3600; issue 5). */
  resolveFallbackSeconds: number;
  // --- cluster: worker job lifetime and shutdown (issue 3) ---
  /**
   * Seconds a worker's lock on a running build job lives without renewal
   * (NIXERY_JOB_LOCK_TTL, default 30; BullMQ lockDuration, renewed every half).
   * A dead worker's job is taken by another one after at most this plus
   * `stalledIntervalSeconds`.
   */
  jobLockTtlSeconds: number;
  /** Seconds between a worker's checks for stalled jobs of dead workers (NIXERY_STALLED_INTERVAL, default 15). */
  stalledIntervalSeconds: number;
  /**
   * Seconds a worker told to stop (SIGTERM) lets its running builds finish
   * before it hands them back to the queue for another worker (NIXERY_WORKER_GRACE, default 25).
   */
  workerGraceSeconds: number;
  /**
   * Seconds a gateway told to stop (SIGTERM) lets its in-flight requests
   * finish (their builds included) before it answers those still waiting with
   * `503 UNAVAILABLE` and `Retry-After` (NIXERY_GATEWAY_GRACE, default
   * `workerGraceSeconds`, so in `npm start` a build that finishes within the
   * worker's grace is still answered).
   */
  gatewayGraceSeconds: number;
  /**
   * Seconds after its last change that a staging leftover (a staged write
   * whose process died before its move) is removed by a worker's staging
   * sweeper (NIXERY_STAGING_MAX_AGE, default 600).
   */
  stagingMaxAgeSeconds: number;
  /** Seconds between a worker's staging sweeps; the first runs at start-up (NIXERY_STAGING_SWEEP_INTERVAL, default 300). */
  stagingSweepSeconds: number;
  /**
   * The worker's Nix store collector (issue 11): free bytes to keep on the
   * filesystem holding /nix/store (NIXERY_NIX_MIN_FREE, a size such as 10G,
   * default 10G; 0 or "off" never collects), how often that is checked
   * (NIXERY_NIX_GC_INTERVAL seconds, default 60) and how long one collection
   * may run (NIXERY_NIX_GC_TIMEOUT seconds, default 900).
   */
  nixGc: StoreGcOptions;
  /** Seconds an identical repeated error is counted before one "repeated N times" line (NIXERY_LOG_REPEAT_INTERVAL, default 60; issue 11). */
  logRepeatSeconds: number;
  /** Seconds an image with unknown packages is answered 404 without a build, per build key (NIXERY_NEGATIVE_TTL, default 600; 0 = off; issue 12). */
  negativeTtlSeconds: number;
  // --- end cluster ---
  // --- popularity job (issue 4) ---
  /** Popularity job settings (NIXERY_POPCOUNT_*; see libs/shared/src/popcount/schedule.ts). */
  popcount: PopcountConfig;
  // --- end popularity job ---
  /** Storage garbage collection (NIXERY_GC_SCHEDULE, NIXERY_GC_KEEP, NIXERY_GC_GRACE, NIXERY_GC_DRY_RUN; issue 11; see collect/settings.ts). */
  gc: GcConfig;
  // --- web page and observability (issue 6) ---
  /** Port of the worker's /metrics, /healthz, /readyz endpoint (NIXERY_WORKER_METRICS_PORT, default 9091; "off" disables; 0 = any free port). */
  workerMetricsPort: number | null;
  /** Basic-auth user and password of the queue dashboard at /admin/queues (NIXERY_ADMIN_USER default "admin", NIXERY_ADMIN_PASSWORD); no password = dashboard off. */
  admin: { user: string; password?: string };
  // --- end web page and observability ---
  // --- admission and trusted proxies (issue 12) ---
  /** Admission of cold builds (NIXERY_BUILD_RATE, NIXERY_MAX_QUEUED_BUILDS, NIXERY_MAX_PACKAGES, NIXERY_ABANDON_AFTER); see {@link AdmissionConfig}. */
  admission: AdmissionConfig;
  /** Proxies whose X-Forwarded-For/-Host/-Proto count (NIXERY_TRUSTED_PROXIES, comma-separated CIDRs or addresses, IPv4 and IPv6; default none). */
  trustedProxies: string[];
  /** The registry's public base URL (NIXERY_PUBLIC_URL, e.g. https://nixery.example.com): the page's pull commands use its host; unset = the request's Host. */
  publicUrl?: string;
  // --- end admission ---
  /**
   * Platforms of images by name (NIXERY_PLATFORMS, issue 13: a comma list
   * such as `linux/amd64,linux/arm64`; default the host's alone, one image
   * per name as before). With more than one, a client that accepts an
   * index gets one naming every platform's image.
   */
  platforms: NixSystem[];
  /** The platform a client that accepts no index gets: the host's if configured, else the first. */
  defaultPlatform: NixSystem;
  /** Pull authentication (NIXERY_AUTH, NIXERY_HTPASSWD, NIXERY_ANONYMOUS, NIXERY_PROTECT_STATUS, NIXERY_TOKEN_*; issue 12; see config/auth.ts). */
  auth: AuthConfig;
  /**
   * Where `workerSystems` came from: NIXERY_WORKER_SYSTEMS (a worker then
   * refuses, by its self-check, a system this machine cannot build), or
   * NIXERY_PLATFORMS when that is unset (a worker then builds those of them
   * this machine can build and logs the others) (issue 13).
   */
  workerSystemsFrom: 'NIXERY_WORKER_SYSTEMS' | 'NIXERY_PLATFORMS';
  /** Directory of the Docker client's config.json, where `nixery push` finds registry credentials (DOCKER_CONFIG, default ~/.docker; issue 17). */
  dockerConfigDir: string;
  /**
   * Seconds a Nix build for a system this machine emulates (aarch64-linux
   * through qemu on x86-64) may run, instead of NIX_TIMEOUT
   * (NIXERY_EMULATED_NIX_TIMEOUT, default 600: emulated builders run about
   * nine times slower) (issue 13).
   */
  emulatedNixTimeoutSeconds: number;
  /** Log level (LOG_LEVEL, default info) and format (LOG_FORMAT json|pretty, default json). */
  logLevel: string;
  logFormat: 'json' | 'pretty';
  /**
   * One warm manifest pull in this many is logged at info level, in one short
   * line (NIXERY_LOG_WARM_EVERY, default 1 = every one; 0 = none; issue 15).
   * Cold pulls are always logged with their build key and job id.
   */
  logWarmEvery: number;
}

const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no'])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');
const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);

const EnvSchema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().default('0.0.0.0'),
  REDIS_URL: z.string().url().optional(),
  NIXERY_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/).default('nixery'),
  NIXERY_CHANNEL: z.string().min(1).optional(),
  NIXERY_PKGS_REPO: z.string().min(1).optional(),
  NIXERY_PKGS_PATH: z.string().min(1).optional(),
  NIXERY_NIX_DIR: z.string().optional(),
  NIX_TIMEOUT: int(60, 1),
  NIXERY_CHANNEL_URL: z.string().url().default('https://channels.nixos.org'),
  NIXERY_TARBALL_URL: z.string().url().default('https://github.com/NixOS/nixpkgs/archive'),
  NIXERY_NIX_OPTIONS: z.string().optional(),
  NIX_POPULARITY_URL: z.string().url().optional(),
  NIXERY_STORAGE_BACKEND: z.enum(['filesystem', 'gcs', 's3']).optional(),
  STORAGE_PATH: z.string().default('./data'),
  GCS_BUCKET: z.string().optional(),
  GCS_SIGNED_URLS: bool.optional(),
  GCS_SIGNED_URL_TTL: int(300, 1, 7 * 24 * 3600),
  // Base of unsigned blob redirect URLs when clients reach the storage under another name (issue 3: emulator in docker-compose).
  GCS_PUBLIC_URL: z.string().url().optional(),
  GOOGLE_APPLICATION_CREDENTIALS: z.string().optional(),
  // S3-compatible storage (issue 16); credentials come from the AWS SDK's default chain.
  S3_BUCKET: z.string().min(1).optional(),
  S3_REGION: z.string().regex(/^[a-z0-9-]+$/).default('us-east-1'),
  S3_ENDPOINT: z.string().url().optional(),
  S3_FORCE_PATH_STYLE: bool.default(false),
  S3_REDIRECT: bool.default(true),
  S3_SIGNED_URL_TTL: int(300, 1, 7 * 24 * 3600),
  S3_PUBLIC_ENDPOINT: z.string().url().optional(),
  NIXERY_LAYER_BUDGET: int(NIXERY_CLOSURE_BUDGET + 1, 2, 125),
  NIXERY_BUILD_WAIT: int(300, 1),
  WORKER_CONCURRENCY: int(1, 1, 64),
  NIXERY_WORKER_SYSTEMS: z.string().optional(),
  NIXERY_PLATFORMS: z.string().optional(), // issue 13
  NIXERY_EMULATED_NIX_TIMEOUT: int(600, 1), // issue 13
  NIXERY_PACK_CONCURRENCY: int(os.availableParallelism(), 1, 64),
  NIXERY_LAYER_LOCK_TTL: int(30, 2),
  NIXERY_RESOLVE_TTL: int(60, 0),
  NIXERY_RESOLVE_FALLBACK_TTL: int(3600, 0), // issue 5
  // cluster (issue 3)
  NIXERY_JOB_LOCK_TTL: int(30, 2, 3600),
  NIXERY_STALLED_INTERVAL: int(15, 1, 3600),
  NIXERY_WORKER_GRACE: int(25, 0, 3600),
  NIXERY_GATEWAY_GRACE: z.coerce.number().int().min(0).max(3600).optional(),
  NIXERY_STAGING_MAX_AGE: int(600, 1),
  NIXERY_STAGING_SWEEP_INTERVAL: int(300, 1),
  NIXERY_NIX_MIN_FREE: z.string().default('10G'),
  NIXERY_NIX_GC_INTERVAL: int(60, 1),
  NIXERY_NIX_GC_TIMEOUT: int(900, 1),
  NIXERY_LOG_REPEAT_INTERVAL: int(60, 1, 3600),
  NIXERY_NEGATIVE_TTL: int(600, 0), // issue 12
  // popularity job (issue 4)
  NIXERY_POPCOUNT_SCHEDULE: z.string().default(DEFAULT_POPCOUNT_SCHEDULE),
  NIXERY_POPCOUNT_CACHE_URL: z.string().url().default('https://cache.nixos.org'),
  NIXERY_POPCOUNT_STORE_PATHS_URL: z.string().url().optional(),
  NIXERY_POPCOUNT_CONCURRENCY: int(32, 1, 256),
  NIXERY_POPCOUNT_TIMEOUT: int(3600, 1),
  NIXERY_POPCOUNT_REALISE: bool.default(true),
  // storage garbage collection (issue 11)
  NIXERY_GC_SCHEDULE: z.string().default('24h'),
  NIXERY_GC_KEEP: z.string().default('30d'),
  NIXERY_GC_GRACE: z.string().default('1h'),
  NIXERY_GC_DRY_RUN: bool.default(false),
  // web page and observability (issue 6)
  NIXERY_WORKER_METRICS_PORT: z.union([z.literal('off'), z.coerce.number().int().min(0).max(65535)]).default(9091),
  NIXERY_ADMIN_USER: z.string().min(1).default('admin'),
  NIXERY_ADMIN_PASSWORD: z.string().min(1).optional(),
  // admission and trusted proxies (issue 12)
  NIXERY_BUILD_RATE: z.string().default('60/60s'),
  NIXERY_MAX_QUEUED_BUILDS: int(1000, 0),
  NIXERY_MAX_PACKAGES: int(64, 1, 10_000),
  NIXERY_ABANDON_AFTER: int(15, 0, 86_400),
  NIXERY_TRUSTED_PROXIES: z.string().default(''),
  NIXERY_PUBLIC_URL: z.string().url().optional(),
  // pull authentication (issue 12)
  ...AuthEnv,
  DOCKER_CONFIG: z.string().min(1).optional(), // issue 17: nixery push
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
  NIXERY_LOG_WARM_EVERY: int(1, 0), // issue 15
});

/** A configuration problem, reported before anything starts. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The repository root (for the bundled nix/ directory). */
export const REPO_ROOT = path.resolve(__dirname, '../../../..');

function hostSystem(): NixSystem {
  return os.arch() === 'arm64' ? 'aarch64-linux' : 'x86_64-linux';
}

/**
 * Splits a command-line-like string into words: whitespace separates, single
 * or double quotes group (so `--option substituters ''` gives an empty word).
 * No escapes, no expansion.
 */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  let current: string | null = null;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const glued = current !== null && m.index === last;
    const piece = m[1] ?? m[2] ?? m[3] ?? '';
    if (glued) current += piece;
    else {
      if (current !== null) words.push(current);
      current = piece;
    }
    last = re.lastIndex;
  }
  if (current !== null) words.push(current);
  return words;
}

/** Reads and validates the configuration from an environment (default process.env). */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${msg}`);
  }
  const e = parsed.data;
  const sources = [e.NIXERY_CHANNEL, e.NIXERY_PKGS_REPO, e.NIXERY_PKGS_PATH].filter(Boolean);
  if (sources.length > 1) {
    throw new ConfigError('set at most one of NIXERY_CHANNEL, NIXERY_PKGS_REPO, NIXERY_PKGS_PATH');
  }
  const nixDir = path.resolve(e.NIXERY_NIX_DIR ?? path.join(REPO_ROOT, 'nix'));
  let source: PackageSourceConfig;
  if (e.NIXERY_PKGS_REPO) source = { type: 'git', url: e.NIXERY_PKGS_REPO };
  else if (e.NIXERY_PKGS_PATH) source = { type: 'path', path: path.resolve(e.NIXERY_PKGS_PATH), bundled: false };
  else if (e.NIXERY_CHANNEL) source = {
      type: 'channel',
      channel: e.NIXERY_CHANNEL,
      channelBaseUrl: e.NIXERY_CHANNEL_URL.replace(/\/+$/, ''),
      tarballBaseUrl: e.NIXERY_TARBALL_URL.replace(/\/+$/, ''),
    };
  else source = { type: 'path', path: path.join(nixDir, 'pkgs'), bundled: true };

  const backend = e.NIXERY_STORAGE_BACKEND ?? (e.GCS_BUCKET ? 'gcs' : 'filesystem');
  let storage: StorageConfig;
  if (backend === 'gcs') {
    if (!e.GCS_BUCKET) throw new ConfigError('NIXERY_STORAGE_BACKEND=gcs needs GCS_BUCKET');
    storage = {
      backend: 'gcs',
      bucket: e.GCS_BUCKET,
      signedUrls: e.GCS_SIGNED_URLS ?? Boolean(e.GOOGLE_APPLICATION_CREDENTIALS),
      signedUrlTtlSeconds: e.GCS_SIGNED_URL_TTL,
      ...(e.GOOGLE_APPLICATION_CREDENTIALS ? { credentialsFile: e.GOOGLE_APPLICATION_CREDENTIALS } : {}),
      ...(e.GCS_PUBLIC_URL ? { publicUrl: e.GCS_PUBLIC_URL.replace(/\/+$/, '') } : {}),
    };
  } else if (backend === 's3') {
    if (!e.S3_BUCKET) throw new ConfigError('NIXERY_STORAGE_BACKEND=s3 needs S3_BUCKET');
    storage = {
      backend: 's3',
      bucket: e.S3_BUCKET,
      region: e.S3_REGION,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
      redirect: e.S3_REDIRECT,
      signedUrlTtlSeconds: e.S3_SIGNED_URL_TTL,
      ...(e.S3_ENDPOINT ? { endpoint: e.S3_ENDPOINT.replace(/\/+$/, '') } : {}),
      ...(e.S3_PUBLIC_ENDPOINT ? { publicEndpoint: e.S3_PUBLIC_ENDPOINT.replace(/\/+$/, '') } : {}),
    };
  } else {
    storage = { backend: 'filesystem', path: path.resolve(e.STORAGE_PATH) };
  }

  const platformSettings = platformsConfig(e.NIXERY_PLATFORMS); // issue 13
  const platforms = platformSettings.platforms;
  const systems = e.NIXERY_WORKER_SYSTEMS !== undefined
    ? e.NIXERY_WORKER_SYSTEMS.split(',').map((s) => s.trim()).filter(Boolean)
    : [...platforms];
  for (const s of systems) {
    if (!(NIX_SYSTEMS as readonly string[]).includes(s)) throw new ConfigError(`unsupported system in NIXERY_WORKER_SYSTEMS: ${s}`);
  }
  const nixOptions = e.NIXERY_NIX_OPTIONS !== undefined
    ? splitWords(e.NIXERY_NIX_OPTIONS)
    : source.type === 'path' && source.bundled ? ['--option', 'substituters', ''] : [];

  return {
    port: e.PORT,
    host: e.HOST,
    ...(e.REDIS_URL ? { redisUrl: e.REDIS_URL } : {}),
    redisPrefix: e.NIXERY_REDIS_PREFIX,
    source,
    nixDir,
    nixTimeoutSeconds: e.NIX_TIMEOUT,
    nix: { options: nixOptions, env: nixEnvironment(env, { root: process.getuid?.() === 0 }) },
    ...(e.NIX_POPULARITY_URL ? { popularityUrl: e.NIX_POPULARITY_URL } : {}),
    storage,
    layerBudget: e.NIXERY_LAYER_BUDGET,
    buildWaitSeconds: e.NIXERY_BUILD_WAIT,
    workerConcurrency: e.WORKER_CONCURRENCY,
    workerSystems: systems as NixSystem[],
    packConcurrency: e.NIXERY_PACK_CONCURRENCY,
    layerLockTtlSeconds: e.NIXERY_LAYER_LOCK_TTL,
    resolveTtlSeconds: e.NIXERY_RESOLVE_TTL,
    resolveFallbackSeconds: e.NIXERY_RESOLVE_FALLBACK_TTL,
    jobLockTtlSeconds: e.NIXERY_JOB_LOCK_TTL,
    stalledIntervalSeconds: e.NIXERY_STALLED_INTERVAL,
    workerGraceSeconds: e.NIXERY_WORKER_GRACE,
    gatewayGraceSeconds: e.NIXERY_GATEWAY_GRACE ?? e.NIXERY_WORKER_GRACE,
    stagingMaxAgeSeconds: e.NIXERY_STAGING_MAX_AGE,
    stagingSweepSeconds: e.NIXERY_STAGING_SWEEP_INTERVAL,
    nixGc: nixGcConfig(e), // issue 11
    logRepeatSeconds: e.NIXERY_LOG_REPEAT_INTERVAL,
    negativeTtlSeconds: e.NIXERY_NEGATIVE_TTL, // issue 12
    popcount: popcountConfig(e), // issue 4
    gc: gcConfig(e), // issue 11
    workerMetricsPort: e.NIXERY_WORKER_METRICS_PORT === 'off' ? null : e.NIXERY_WORKER_METRICS_PORT, // issue 6
    admin: { user: e.NIXERY_ADMIN_USER, ...(e.NIXERY_ADMIN_PASSWORD ? { password: e.NIXERY_ADMIN_PASSWORD } : {}) }, // issue 6
    admission: admissionConfig(e), // issue 12
    trustedProxies: trustedProxies(e.NIXERY_TRUSTED_PROXIES), // issue 12
    ...(e.NIXERY_PUBLIC_URL ? { publicUrl: e.NIXERY_PUBLIC_URL.replace(/\/+$/, '') } : {}), // issue 12
    auth: authOrThrow(e), // issue 12
    dockerConfigDir: path.resolve(e.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker')), // issue 17
    ...platformSettings, // issue 13
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    workerSystemsFrom: e.NIXERY_WORKER_SYSTEMS !== undefined ? 'NIXERY_WORKER_SYSTEMS' : 'NIXERY_PLATFORMS', // issue 13
    emulatedNixTimeoutSeconds: e.NIXERY_EMULATED_NIX_TIMEOUT, // issue 13
    logWarmEvery: e.NIXERY_LOG_WARM_EVERY, // issue 15
  };
}

/** The image platforms from NIXERY_PLATFORMS (issue 13); unset = the host's alone. */
function platformsConfig(text: string | undefined): Pick<Config, 'platforms' | 'defaultPlatform'> {
  const host = hostSystem();
  if (text === undefined || text.trim() === '') return { platforms: [host], defaultPlatform: host };
  const parsed = parsePlatforms(text);
  if (!parsed.ok) throw new ConfigError(`NIXERY_PLATFORMS: ${parsed.reason}`);
  return { platforms: parsed.systems, defaultPlatform: defaultPlatform(parsed.systems, host) };
}

/** The pull authentication settings from the parsed environment (issue 12). */
function authOrThrow(e: z.infer<typeof EnvSchema>): AuthConfig {
  const auth = authConfig(e);
  if ('error' in auth) throw new ConfigError(auth.error);
  return auth;
}

/** The Nix store collector's settings from the parsed environment (issue 11). */
function nixGcConfig(e: z.infer<typeof EnvSchema>): StoreGcOptions {
  const size = e.NIXERY_NIX_MIN_FREE.trim().toLowerCase() === 'off' ? { bytes: 0 } : parseByteSize(e.NIXERY_NIX_MIN_FREE);
  if ('error' in size) throw new ConfigError(`NIXERY_NIX_MIN_FREE: ${size.error}`);
  return { minFreeBytes: size.bytes, intervalMs: e.NIXERY_NIX_GC_INTERVAL * 1000, timeoutMs: e.NIXERY_NIX_GC_TIMEOUT * 1000 };
}

/** The popularity job's settings from the parsed environment (issue 4). */
function popcountConfig(e: z.infer<typeof EnvSchema>): PopcountConfig {
  const schedule = parsePopcountSchedule(e.NIXERY_POPCOUNT_SCHEDULE);
  if ('error' in schedule) throw new ConfigError(`NIXERY_POPCOUNT_SCHEDULE: ${schedule.error}`);
  return {
    schedule,
    cacheUrl: e.NIXERY_POPCOUNT_CACHE_URL.replace(/\/+$/, ''),
    ...(e.NIXERY_POPCOUNT_STORE_PATHS_URL ? { storePathsUrl: e.NIXERY_POPCOUNT_STORE_PATHS_URL } : {}),
    concurrency: e.NIXERY_POPCOUNT_CONCURRENCY,
    timeoutSeconds: e.NIXERY_POPCOUNT_TIMEOUT,
    realise: e.NIXERY_POPCOUNT_REALISE,
  };
}

/** The storage collector's settings from the parsed environment (issue 11). */
function gcConfig(e: z.infer<typeof EnvSchema>): GcConfig {
  const schedule = parsePopcountSchedule(e.NIXERY_GC_SCHEDULE);
  if ('error' in schedule) throw new ConfigError(`NIXERY_GC_SCHEDULE: ${schedule.error}`);
  const duration = (name: string, text: string): number => {
    const ms = parseDurationMs(text);
    if (ms === null) throw new ConfigError(`${name}: not a number of seconds or a duration (90s, 15m, 6h, 30d): ${text}`);
    return ms;
  };
  return {
    schedule,
    keepMs: duration('NIXERY_GC_KEEP', e.NIXERY_GC_KEEP),
    graceMs: duration('NIXERY_GC_GRACE', e.NIXERY_GC_GRACE),
    dryRun: e.NIXERY_GC_DRY_RUN,
  };
}

/**
 * Admission of cold builds (issue 12). A client is the authenticated user,
 * else its address as seen through trusted proxies only.
 */
export interface AdmissionConfig {
  /**
   * Token bucket per client for requests that would enqueue a new build
   * (NIXERY_BUILD_RATE, `N/duration` such as `60/60s`, or `off`; default
   * `60/60s`): holds N tokens, refilled at N per duration.
   */
  buildRate: { tokens: number; perMs: number } | null;
  /** Builds waiting (not active) in the whole cluster, all systems together; past it 503 (NIXERY_MAX_QUEUED_BUILDS, default 1000; 0 = no cap). */
  maxQueuedBuilds: number;
  /** Packages one image may hold, meta-packages expanded and always-added ones included (NIXERY_MAX_PACKAGES, default 64). */
  maxPackages: number;
  /** A waiting build nobody waits for is removed once it has not started for this long (NIXERY_ABANDON_AFTER seconds, default 15). */
  abandonAfterMs: number;
}

/** Admission settings from the parsed environment (issue 12). */
function admissionConfig(e: z.infer<typeof EnvSchema>): AdmissionConfig {
  const rate = e.NIXERY_BUILD_RATE.trim().toLowerCase();
  let buildRate: AdmissionConfig['buildRate'] = null;
  if (rate !== 'off') {
    const m = /^(\d+)\/(.+)$/.exec(rate);
    const perMs = m ? parseDurationMs(m[2] ?? '') : null;
    const tokens = m ? Number(m[1]) : 0;
    if (!m || perMs === null || perMs <= 0 || tokens < 1) throw new ConfigError(`NIXERY_BUILD_RATE: not "off" or builds per duration (30/60s, 100/1h): ${e.NIXERY_BUILD_RATE}`);
    buildRate = { tokens, perMs };
  }
  return { buildRate, maxQueuedBuilds: e.NIXERY_MAX_QUEUED_BUILDS, maxPackages: e.NIXERY_MAX_PACKAGES, abandonAfterMs: e.NIXERY_ABANDON_AFTER * 1000 };
}

/** NIXERY_TRUSTED_PROXIES checked: each entry an IPv4 or IPv6 address, optionally with a prefix length (issue 12). */
function trustedProxies(text: string): string[] {
  const entries = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const entry of entries) {
    const [addr = '', bits, extra] = entry.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    const ok = family !== 0 && extra === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max));
    if (!ok) throw new ConfigError(`NIXERY_TRUSTED_PROXIES: not an address or CIDR: ${entry}`);
  }
  return entries;
}
