/**
 * What `/healthz` reports: the states of this process that a restart of the
 * process would fix and that it cannot leave on its own, each a check a
 * part of the process registers. Nothing that merely waits for something
 * outside (Redis or storage away, Nix unable to build) belongs here: that
 * is `/readyz`; restarting the process would not bring those back.
 *
 * Registered today: `embedded-redis` (the embedded redis-server's restarts
 * failed several times in a row; it goes on trying), `build-worker` and
 * `popcount-worker` (a BullMQ worker stopped taking jobs without being
 * asked to).
 */
export class Liveness {
  private readonly checks = new Map<string, () => string | null>();

  /** Registers `check` under `part`: it returns why the part is broken, or null while it is fine. */
  watch(part: string, check: () => string | null): void {
    this.checks.set(part, check);
  }

  /** The parts broken now, with their causes (empty: alive). */
  broken(): { part: string; cause: string }[] {
    const out: { part: string; cause: string }[] = [];
    for (const [part, check] of this.checks) {
      const cause = check();
      if (cause !== null) out.push({ part, cause });
    }
    return out;
  }
}
