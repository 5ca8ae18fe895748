/**
 * The log throttle (infra/log-throttle.ts): the first line of an error is
 * written at once, identical ones within the interval are only counted and
 * written as one "repeated N times" line when it ends; other errors are
 * independent; flush writes what is counted.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import pino from 'pino';
import { logThrottle } from '../../libs/shared/src/infra/log-throttle';

/** A pino logger whose lines land in an array. */
function capture() {
  const lines: { level: number; msg: string; repeated?: number; job?: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, log: pino({ level: 'debug' }, sink) };
}

describe('log throttle', () => {
  it('a flood of one error is two lines per interval: the first at once, then the count', async () => {
    const { lines, log } = capture();
    const t = logThrottle(log, 300);
    for (let i = 0; i < 500; i++) t.log('error', 'MISCONF disk', { job: i }, 'worker error');
    await sleep(20);
    assert.equal(lines.length, 1, 'the first occurrence is logged at once, the rest counted');
    assert.equal(lines[0]!.msg, 'worker error');
    assert.equal(lines[0]!.level, 50);
    await sleep(450);
    assert.equal(lines.length, 2);
    assert.match(lines[1]!.msg, /^worker error \(repeated 499 times in \d+ s\)$/);
    assert.equal(lines[1]!.repeated, 499);
    assert.equal(lines[1]!.job, 499, 'the count carries the latest occurrence fields');
    // The window is closed: the next one is written at once again.
    t.log('error', 'MISCONF disk', {}, 'worker error');
    await sleep(20);
    assert.equal(lines.length, 3);
    t.flush();
  });

  it('different errors are throttled apart; one seen once costs one line; flush writes pending counts', async () => {
    const { lines, log } = capture();
    const t = logThrottle(log, 60_000);
    t.log('warn', 'a', {}, 'a failed');
    t.log('warn', 'b', {}, 'b failed');
    t.log('warn', 'a', {}, 'a failed');
    t.log('warn', 'a', {}, 'a failed');
    t.log('warn', 'c', {}, 'c failed');
    assert.deepEqual(lines.map((l) => l.msg), ['a failed', 'b failed', 'c failed']);
    t.flush();
    await sleep(10);
    assert.deepEqual(lines.map((l) => l.msg), ['a failed', 'b failed', 'c failed', 'a failed (repeated 2 times in 1 s)']);
  });

  it("writes through a request's or job's own logger when given one (its bindings stay on the line and on the count)", () => {
    const { lines, log } = capture();
    const t = logThrottle(log, 60_000);
    t.log('error', 'full', {}, 'build failed', log.child({ job: 1 }));
    t.log('error', 'full', {}, 'build failed', log.child({ job: 2 }));
    t.flush();
    assert.deepEqual(lines.map((l) => [l.msg, l.job]), [['build failed', 1], ['build failed (repeated 1 times in 1 s)', 2]]);
  });
});
