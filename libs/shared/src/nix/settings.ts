/**
 * The Nix settings this project depends on, owned by the project instead of
 * trusted from whatever the machine happens to have.
 *
 * Debian's nix-bin without its Recommends has no /etc/nix/nix.conf and no
 * `nixbld` group, so Nix's compiled-in `build-users-group = nixbld` fails
 * every build; a container has no systemd to make either. Every Nix command
 * the project runs therefore gets `NIX_CONFIG` with these settings.
 *
 * Precedence, lowest first (Nix applies later sources over earlier ones):
 *  1. nix.conf files (`/etc/nix/nix.conf`, `$NIX_CONF_DIR`, `~/.config/nix`):
 *     everything not named below still applies (cores, max-jobs, trusted keys,
 *     substituters for nixpkgs, ...);
 *  2. the project's settings ({@link projectNixSettings});
 *  3. the operator's own `NIX_CONFIG`, appended after the project's lines;
 *  4. `NIXERY_NIX_OPTIONS` (`--option name value` on every command line).
 */

/** How Nix is invoked: the same for image preparation, popularity counting and self-checks. */
export interface NixInvocation {
  /** Extra command-line arguments for every Nix command (NIXERY_NIX_OPTIONS). */
  options: string[];
  /** The complete environment of every Nix command (NIX_CONFIG included). */
  env: Record<string, string>;
}

/** What decides the project's settings. */
export interface NixSettingsInput {
  /** Running as root: single-user Nix owns the store, so builds run without build users. */
  root: boolean;
}

/**
 * The settings every Nix command gets:
 * - `build-users-group =` (empty) as root: single-user Nix builds as root, no
 *   `nixbld` users needed (as in a container without systemd);
 * - `sandbox = false`: the bundled package set copies host files, and a
 *   sandbox needs user namespaces that containers often lack. An operator who
 *   wants the sandbox sets `--option sandbox true` in NIXERY_NIX_OPTIONS.
 */
export function projectNixSettings(input: NixSettingsInput): Record<string, string> {
  return {
    ...(input.root ? { 'build-users-group': '' } : {}),
    sandbox: 'false',
  };
}

/** Settings as nix.conf text, one `name = value` line each. */
export function nixConfText(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([name, value]) => (value === '' ? `${name} =` : `${name} = ${value}`))
    .join('\n');
}

/**
 * The environment for Nix commands: `env` with `NIX_CONFIG` set to the
 * project's settings followed by the operator's own `NIX_CONFIG`, if any (so
 * the operator's lines win over the project's).
 */
export function nixEnvironment(env: Record<string, string | undefined>, input: NixSettingsInput): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  const own = env.NIX_CONFIG?.trim();
  out.NIX_CONFIG = [nixConfText(projectNixSettings(input)), ...(own ? [own] : [])].join('\n');
  return out;
}
