/**
 * bcrypt comparisons on a thread of their own (worker_threads), so the
 * CPU a check costs (about 0.1 to 0.3 s at cost 10) never stalls the event
 * loop that serves pulls. bcryptjs on the event loop yields only every
 * 100 ms: measured with `bench/auth-flood.ts` (50 clients sending wrong
 * passwords for 8 s), a remembered user's `/v2/` went from 0.5 ms to 95 ms
 * (p50) and 4.7 s (p99) that way; with this thread, to 14 ms and 50 ms
 * (what is left is the flood's own 2 000 requests a second). The thread is started on first use, keeps the process
 * alive only while a check waits on it, and is started again if it ever dies.
 */
import { Worker } from 'node:worker_threads';

/**
 * The thread's body: messages `{ id, password, hash }` in, `{ id, ok }` out,
 * one at a time. bcryptjs reads `$2y$` (what htpasswd -B writes) like
 * `$2b$`: the same algorithm. Given as source (`eval`) so it runs the same
 * from the built `dist/` and from the TypeScript sources under tsx, whose
 * loader a worker thread does not inherit on Node 20.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const bcrypt = require(${JSON.stringify(require.resolve('bcryptjs'))});
parentPort.on('message', (m) => {
  let ok = false;
  try { ok = bcrypt.compareSync(m.password, m.hash); } catch { ok = false; }
  parentPort.postMessage({ id: m.id, ok });
});
`;

/** Compares on the bcrypt thread. */
export class BcryptThread {
  private worker: Worker | null = null;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (ok: boolean) => void; reject: (err: Error) => void }>();

  /** Whether `password` matches the bcrypt `hash`. */
  compare(password: string, hash: string): Promise<boolean> {
    const w = this.thread();
    const id = this.next++;
    if (this.pending.size === 0) w.ref(); // held only while a check is waiting on it
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, password, hash });
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(THREAD_SOURCE, { eval: true });
    w.on('message', (m: { id: number; ok: boolean }) => {
      this.pending.get(m.id)?.resolve(m.ok);
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
    });
    const fail = (err: Error) => {
      this.worker = null;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the bcrypt thread exited with ${code}`)));
    w.unref(); // after the listeners: adding a 'message' listener refs the thread again
    this.worker = w;
    return w;
  }
}
