/**
 * Platforms of multi-platform images (issue 13): the `os/architecture`
 * names clients use (`linux/amd64`, `linux/arm64`) and the Nix systems
 * that build them. Parsed once, from NIXERY_PLATFORMS, at start-up.
 */
import type { IndexPlatform } from './image-documents';
import type { NixSystem } from './image-spec';

/** The index platform object of each Nix system. */
export const PLATFORM_OF: Readonly<Record<NixSystem, IndexPlatform>> = {
  'x86_64-linux': { os: 'linux', architecture: 'amd64' },
  'aarch64-linux': { os: 'linux', architecture: 'arm64', variant: 'v8' },
};

/** Spellings accepted in NIXERY_PLATFORMS. */
const NAMES: Readonly<Record<string, NixSystem>> = {
  'linux/amd64': 'x86_64-linux',
  'linux/arm64': 'aarch64-linux',
  'linux/arm64/v8': 'aarch64-linux',
};

/**
 * Parses a comma list such as `linux/amd64,linux/arm64` into Nix systems,
 * in order, without repeats; an unknown platform or an empty list is an error.
 */
export function parsePlatforms(text: string): { ok: true; systems: NixSystem[] } | { ok: false; reason: string } {
  const systems: NixSystem[] = [];
  for (const word of text.split(',').map((w) => w.trim().toLowerCase()).filter(Boolean)) {
    const system = NAMES[word];
    if (!system) return { ok: false, reason: `unsupported platform "${word.slice(0, 40)}" (supported: ${Object.keys(NAMES).join(', ')})` };
    if (!systems.includes(system)) systems.push(system);
  }
  if (systems.length === 0) return { ok: false, reason: 'no platform given' };
  return { ok: true, systems };
}

/** The platform a client that accepts no index gets: the host's when configured, else the first configured. */
export function defaultPlatform(systems: readonly NixSystem[], host: NixSystem): NixSystem {
  return systems.includes(host) ? host : (systems[0] ?? host);
}

/** The `os/architecture` name of a system's platform (`linux/amd64`), for logs and metrics. */
export function platformName(system: NixSystem): string {
  const p = PLATFORM_OF[system];
  return `${p.os}/${p.architecture}`;
}
