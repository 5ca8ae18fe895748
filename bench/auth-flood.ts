/**
 * What a flood of wrong passwords costs a Nixery with NIXERY_AUTH=basic:
 * the latency of `GET /v2/` for a user whose password is remembered, on an
 * idle gateway and while FLOOD clients each send distinct wrong passwords
 * (every one a bcrypt check at cost 10), plus how the flood was answered
 * (401 checked, 429 past the bound on waiting checks).
 *
 *   npm run bench:auth
 *   BENCH_FLOOD=100 BENCH_SECONDS=10 npm run bench:auth
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { startNixery } from '../test/helpers/nixery';

const FLOOD = Number(process.env.BENCH_FLOOD ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function probe(url: string, auth: string, until: number): Promise<number[]> {
  const ms: number[] = [];
  while (Date.now() < until) {
    const t = performance.now();
    const r = await fetch(`${url}/v2/`, { headers: { Authorization: auth } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`the remembered user got ${r.status}`);
    ms.push(performance.now() - t);
  }
  return ms.sort((a, b) => a - b);
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!.toFixed(1);

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-auth-bench-'));
  const file = path.join(dir, 'htpasswd');
  await writeFile(file, `alice:${bcrypt.hashSync('right', 10).replace(/^\$2b\$/, '$2y$')}\n`);
  const t0 = performance.now();
  bcrypt.compareSync('wrong', bcrypt.hashSync('right', 10));
  console.log(`one bcrypt check (cost 10, this process): ${(performance.now() - t0).toFixed(0)} ms (with the hash)`);
  const nx = await startNixery({ NIXERY_AUTH: 'basic', NIXERY_HTPASSWD: file, LOG_LEVEL: 'info' });
  try {
    const alice = basic('alice', 'right');
    await fetch(`${nx.url}/v2/`, { headers: { Authorization: alice } });
    const idle = await probe(nx.url, alice, Date.now() + SECONDS * 1000);
    const counts = new Map<number, number>();
    const until = Date.now() + SECONDS * 1000;
    let n = 0;
    const flooders = Array.from({ length: FLOOD }, async () => {
      while (Date.now() < until) {
        const r = await fetch(`${nx.url}/v2/`, { headers: { Authorization: basic('alice', `guess-${n++}`) } });
        await r.arrayBuffer();
        counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
      }
    });
    const busy = await probe(nx.url, alice, until);
    await Promise.all(flooders);
    console.log(`remembered user, idle:  ${idle.length} requests, p50 ${pct(idle, 0.5)} ms, p99 ${pct(idle, 0.99)} ms`);
    console.log(`remembered user, flood: ${busy.length} requests, p50 ${pct(busy, 0.5)} ms, p99 ${pct(busy, 0.99)} ms`);
    console.log(`flood of ${FLOOD} clients over ${SECONDS} s answered: ${[...counts].map(([s, c]) => `${c} x ${s}`).join(', ')}`);
  } finally {
    await nx.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
