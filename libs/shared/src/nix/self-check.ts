/**
 * Can this machine build with Nix at all? A broken build environment (Nix
 * missing, the store not writable, a config naming build users that do not
 * exist) must read as "the machine is broken" (503, /readyz), never as
 * "your image is unknown" (404).
 *
 * The check builds a trivial derivation (fixed code; only a nonce is passed,
 * as a string argument) with the configured Nix, so it exercises exactly what
 * an image build needs: evaluation, the store, the builder start.
 */
import type { RunResult } from '../infra/run-command';
import { runNix } from './command';
import type { NixInvocation } from './settings';
import { trimNixStderr } from './prepare';
import { hostNixSystem, type PlatformPaths, selfCheckBuilder, systemSupport } from './platforms';

/** The result of a self-check. */
export type NixHealth =
  | { ok: true; checkedAt: number }
  /** `cause`: what failed (Nix's own words, trimmed); `hint`: how an operator fixes it. */
  | { ok: false; cause: string; hint: string; checkedAt: number };

/**
 * One derivation per system that needs nothing but a shell of that system
 * (`checks`: JSON made by this module, never user text); the nonce makes
 * every check a real build.
 */
const SELF_CHECK_NIX = `{ nonce, checks }: map (c: derivation {
  name = "nixery-self-check-\${c.system}";
  inherit (c) system builder;
  args = c.args ++ [ "echo \${nonce} > $out" ];
}) (builtins.fromJSON checks)`;

/** How an operator fixes what `r` shows (Nix's wording read only to pick advice, never to decide control flow). */
function hintFor(r: RunResult): string {
  const text = `${r.spawnError ?? ''}\n${r.stderr}`;
  if (r.spawnError !== undefined) return 'Nix is not installed or not on PATH: run `npm run setup` (scripts/setup.sh installs Debian\'s nix-bin)';
  if (/build-users-group|build users/i.test(text)) {
    return "Nix wants build users that do not exist: run as root (Nixery then sets build-users-group to empty), create them (Debian's nix-setup-systemd), or pass NIXERY_NIX_OPTIONS=\"--option build-users-group ''\"";
  }
  if (/permission denied|read-only file system|not writable/i.test(text)) {
    return 'the Nix store (/nix) is not writable by this user: run as root (single-user Nix) or point Nix at a daemon (NIX_REMOTE=daemon)';
  }
  if (/sandbox|namespace/i.test(text)) return 'the Nix sandbox cannot start here: leave sandbox off (the default Nixery sets)';
  return 'see the Nix error; the settings Nixery adds are in NIX_CONFIG (libs/shared/src/nix/settings.ts), NIXERY_NIX_OPTIONS and /etc/nix/nix.conf apply too';
}

/**
 * Builds the trivial derivation with `nix` for each of `opts.systems`
 * (default: the host's); never throws. A system this machine cannot build
 * (no emulation registered, issue 13) is refused before Nix runs, naming it.
 */
export async function checkNixBuilds(
  nix: NixInvocation,
  opts: { timeoutMs?: number; nixBuild?: string; systems?: readonly string[]; paths?: PlatformPaths } = {},
): Promise<NixHealth> {
  const systems = opts.systems?.length ? opts.systems : [opts.paths?.host ?? hostNixSystem()];
  for (const system of systems) {
    const support = systemSupport(system, opts.paths);
    if (!support.ok) {
      return { ok: false, cause: `this machine cannot build ${system}: ${support.reason}`, hint: `build ${system} elsewhere, or make this machine able to (${support.reason})`, checkedAt: Date.now() };
    }
  }
  const checks = JSON.stringify(systems.map((system) => ({ system, ...selfCheckBuilder(system, opts.paths) })));
  const nonce = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const r = await runNix(
    nix,
    { program: opts.nixBuild ?? 'nix-build', head: ['--no-out-link'], rest: ['--expr', SELF_CHECK_NIX, '--argstr', 'nonce', nonce, '--argstr', 'checks', checks] },
    { timeoutMs: opts.timeoutMs ?? 60_000 },
  );
  const checkedAt = Date.now();
  if (r.code === 0 && !r.timedOut && !r.aborted) return { ok: true, checkedAt };
  const what = r.timedOut ? `timed out after ${opts.timeoutMs ?? 60_000} ms` : r.spawnError ?? (r.exitSignal ? `killed by ${r.exitSignal}` : `exit ${r.code}`);
  const tail = trimNixStderr(r.stderr, 1000);
  return { ok: false, cause: `Nix cannot build (${what})${tail ? `: ${tail}` : ''}`, hint: hintFor(r), checkedAt };
}

/**
 * Keeps the last self-check result. `ensure()` re-checks a broken environment
 * at most every `recheckMs`, so a fixed machine recovers without a restart;
 * concurrent callers share one check.
 */
export class NixHealthMonitor {
  private last: NixHealth | undefined;
  private running: Promise<NixHealth> | undefined;

  constructor(
    private readonly check: () => Promise<NixHealth>,
    private readonly opts: { recheckMs: number; onResult?: (h: NixHealth, previous: NixHealth | undefined) => void },
  ) {}

  /** The last result, if a check has finished. */
  current(): NixHealth | undefined {
    return this.last;
  }

  /** Runs a check now (or joins the one running). */
  recheck(): Promise<NixHealth> {
    this.running ??= this.check().then((h) => {
      const previous = this.last;
      this.last = h;
      this.running = undefined;
      this.opts.onResult?.(h, previous);
      return h;
    });
    return this.running;
  }

  /** The health to act on: the last good result, or a fresh check when there is none or it was broken long enough ago. */
  async ensure(): Promise<NixHealth> {
    const h = this.last;
    if (h?.ok) return h;
    if (h && Date.now() - h.checkedAt < this.opts.recheckMs) return h;
    return this.recheck();
  }
}
