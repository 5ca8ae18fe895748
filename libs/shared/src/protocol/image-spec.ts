/**
 * Image names as Nixery defines them: every path component of the repository
 * name is a top-level package of the package set. Parsed here, at the edge,
 * into an `ImageSpec`; nothing downstream re-validates the text.
 */
import { BoundedMemo } from '../core/memo';

/** The Nix systems images can be built for. */
export const NIX_SYSTEMS = ['x86_64-linux', 'aarch64-linux'] as const;
/** A Nix system string a worker can build for. */
export type NixSystem = (typeof NIX_SYSTEMS)[number];

/** A parsed, normalised image request. */
export interface ImageSpec {
  /** The repository name as requested (e.g. "shell/git/htop"). */
  readonly name: string;
  /** The tag (for git sources: a branch, tag or commit). */
  readonly tag: string;
  /** Packages to install: meta-packages expanded, always-added packages included, sorted, deduplicated. */
  readonly packages: readonly string[];
  /** Target system. */
  readonly system: NixSystem;
  /** OCI/Docker architecture name of `system`. */
  readonly architecture: 'amd64' | 'arm64';
  /** Set when the name chose the system (`arm64/...`, `amd64/...`): then it is one platform, never an index (issue 13). */
  readonly explicitSystem?: true;
}

/** Why a name or tag was rejected. */
export type SpecError = { kind: 'name_invalid'; reason: string } | { kind: 'tag_invalid'; reason: string };

/** Packages of the `shell` meta-package (as in Nixery). */
export const SHELL_PACKAGES = ['bashInteractive', 'coreutils', 'moreutils', 'nano'] as const;
/** Packages every image gets. */
export const ALWAYS_PACKAGES = ['cacert', 'iana-etc'] as const;

/** Repository names may hold at most this many bytes (as in the distribution registry). */
export const MAX_NAME_LENGTH = 255;
/**
 * One path component of a repository name, as the OCI distribution spec
 * defines it: lowercase letters and digits, separated by one `.`, one or
 * two `_`, or any number of `-` (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`). So
 * one image has one spelling: `Hello`, `_7zz` and `gtk+` are not names
 * (packages with such attributes are reached through the lookup's
 * case-insensitive and leading-underscore fallbacks, nix/prepare-image.nix).
 */
export const NAME_COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|__?|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Validates a repository name's shape (the spec's grammar, {@link NAME_COMPONENT_RE} per component) without interpreting it. */
export function validateName(name: string): SpecError | null {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
    return { kind: 'name_invalid', reason: `name must be 1-${MAX_NAME_LENGTH} characters` };
  }
  for (const c of name.split('/')) {
    if (!NAME_COMPONENT_RE.test(c)) {
      return { kind: 'name_invalid', reason: `invalid path component "${c.slice(0, 64)}": must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)* (lowercase)` };
    }
  }
  return null;
}

/** Validates a tag. */
export function validateTag(tag: string): SpecError | null {
  return TAG_RE.test(tag) ? null : { kind: 'tag_invalid', reason: 'tag must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}' };
}

/**
 * Parses a repository name and tag into an ImageSpec. A leading `arm64`
 * selects aarch64-linux; a `shell` component (first after the architecture)
 * expands to SHELL_PACKAGES. Order and duplicates do not change the result.
 */
export function parseImage(name: string, tag: string): ParsedImage {
  // The length prefix keeps (name, tag) pairs apart whatever characters they hold.
  return parsed.get(`${name.length}:${name}${tag}`, () => parseImageText(name, tag));
}

type ParsedImage = { ok: true; spec: ImageSpec } | { ok: false; error: SpecError };

/** Warm pulls parse the same few names over and over (issue 15); the answers are immutable. */
const parsed = new BoundedMemo<string, ParsedImage>(4096);

function parseImageText(name: string, tag: string): ParsedImage {
  const nameErr = validateName(name);
  if (nameErr) return { ok: false, error: nameErr };
  const tagErr = validateTag(tag);
  if (tagErr) return { ok: false, error: tagErr };

  let parts = name.split('/');
  let system: NixSystem = 'x86_64-linux';
  const explicitSystem = parts[0] === 'arm64' || parts[0] === 'amd64';
  if (parts[0] === 'arm64') system = 'aarch64-linux';
  if (explicitSystem) parts = parts.slice(1);
  if (parts[0] === 'shell') parts = [...parts.slice(1), ...SHELL_PACKAGES];
  const packages = [...new Set([...parts, ...ALWAYS_PACKAGES])].sort();
  return {
    ok: true,
    spec: { name, tag, packages, system, architecture: architectureOf(system), ...(explicitSystem ? { explicitSystem: true as const } : {}) },
  };
}

/** The same image for another system (a platform of a multi-platform image, issue 13). */
export function withSystem(spec: ImageSpec, system: NixSystem): ImageSpec {
  if (spec.system === system) return spec; // the same request: no copy on a warm pull
  // One object per (spec, system), so an index's platforms keep their build keys (build-key.ts) across pulls.
  let bySystem = otherSystems.get(spec);
  if (!bySystem) otherSystems.set(spec, (bySystem = new Map()));
  let other = bySystem.get(system);
  if (!other) bySystem.set(system, (other = { ...spec, system, architecture: architectureOf(system) }));
  return other;
}

const otherSystems = new WeakMap<ImageSpec, Map<NixSystem, ImageSpec>>();

function architectureOf(system: NixSystem): 'amd64' | 'arm64' {
  return system === 'aarch64-linux' ? 'arm64' : 'amd64';
}
