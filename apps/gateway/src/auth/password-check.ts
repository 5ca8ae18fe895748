/**
 * Checks user names and passwords against htpasswd bcrypt hashes without
 * letting bcrypt's cost (0.1 to 0.3 s of CPU per check at cost 10)
 * be turned against the gateway:
 *
 * - a right password is remembered for `okTtlMs` (default 60 s) and a wrong
 *   one for `wrongTtlMs` (default 10 s), keyed by a SHA-256 of user, hash
 *   and password (the password itself is never kept), so a client pulling
 *   many blobs, or repeating one wrong password, costs one bcrypt check;
 * - an unknown user is refused without bcrypt;
 * - checks run on a thread of their own (bcrypt-pool.ts), never on the
 *   event loop; at most `concurrency` at once (default 1: one core at
 *   most, whatever comes) and at most `queue` more wait (default 16);
 *   past that the answer is `busy` (the gateway says 429 with Retry-After)
 *   instead of a growing backlog, so a flood of distinct wrong passwords
 *   costs at most one check's CPU at a time, and users already remembered
 *   never wait behind it.
 */
import { createHash } from 'node:crypto';
import { BcryptThread } from './bcrypt-pool';

/** The outcome of one check. */
export type PasswordVerdict = 'ok' | 'wrong' | 'busy';

/** Limits of a {@link PasswordChecker}. */
export interface PasswordCheckOptions {
  okTtlMs?: number;
  wrongTtlMs?: number;
  concurrency?: number;
  queue?: number;
  /** Entries each memory holds at most (default 10 000); the oldest go first. */
  maxEntries?: number;
}

/** A memory of verdicts that forgets after a time and beyond a size. */
class Remembered {
  private readonly until = new Map<string, number>();
  constructor(private readonly ttlMs: number, private readonly max: number) {}
  has(key: string, now: number): boolean {
    const t = this.until.get(key);
    if (t === undefined) return false;
    if (t > now) return true;
    this.until.delete(key);
    return false;
  }
  add(key: string, now: number): void {
    this.until.delete(key);
    this.until.set(key, now + this.ttlMs);
    if (this.until.size > this.max) this.until.delete(this.until.keys().next().value as string);
  }
}

/** Verifies passwords of an htpasswd user table (see the file's comment). */
export class PasswordChecker {
  private readonly ok: Remembered;
  private readonly wrong: Remembered;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly queue: number;
  private readonly bcrypt = new BcryptThread();
  /** bcrypt comparisons run so far (the rest were answered from memory or refused before one). */
  bcryptChecks = 0;

  constructor(private readonly users: ReadonlyMap<string, string>, opts: PasswordCheckOptions = {}) {
    const max = opts.maxEntries ?? 10_000;
    this.ok = new Remembered(opts.okTtlMs ?? 60_000, max);
    this.wrong = new Remembered(opts.wrongTtlMs ?? 10_000, max);
    this.concurrency = opts.concurrency ?? 1;
    this.queue = opts.queue ?? 16;
  }

  /** Whether `password` is `user`'s, remembered or checked with bcrypt. */
  async check(user: string, password: string): Promise<PasswordVerdict> {
    const hash = this.users.get(user);
    if (hash === undefined) return 'wrong';
    const key = createHash('sha256').update(user).update('\0').update(hash).update('\0').update(password).digest('base64');
    const now = Date.now();
    if (this.ok.has(key, now)) return 'ok';
    if (this.wrong.has(key, now)) return 'wrong';
    if (this.running >= this.concurrency && this.waiting.length >= this.queue) return 'busy';
    await this.slot();
    try {
      this.bcryptChecks += 1;
      const right = await this.bcrypt.compare(password, hash);
      (right ? this.ok : this.wrong).add(key, Date.now());
      return right ? 'ok' : 'wrong';
    } finally {
      this.release();
    }
  }

  /** Takes a running place, or waits until one is handed over by {@link release}. */
  private async slot(): Promise<void> {
    if (this.running < this.concurrency) this.running += 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the place to the next waiter, else frees it. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running -= 1;
  }
}
