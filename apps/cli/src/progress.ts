import type { BuildProgress } from '@nixery/shared';

/** Where the CLI tells what it is doing: stderr, so stdout holds only the result. */
export interface Progress {
  /** A build stage (the pipeline's progress reports). */
  build(p: BuildProgress): void;
  /** One line of its own (push steps, results). */
  line(text: string): void;
  /** Ends a bar in progress, if any. */
  end(): void;
}

const BAR_WIDTH = 30;

/**
 * A progress reporter on `out`: on a terminal one line redrawn in place with a
 * bar while layers are packed; otherwise plain lines, one per stage and per
 * packed layer, so a CI log reads top to bottom.
 */
export function createProgress(out: NodeJS.WriteStream): Progress {
  const tty = Boolean(out.isTTY);
  let lastStage = '';
  let barShown = false;
  const end = () => {
    if (barShown) out.write('\n');
    barShown = false;
  };
  return {
    build(p) {
      const counted = p.total !== undefined && p.packed !== undefined;
      if (tty) {
        const filled = counted ? Math.round((BAR_WIDTH * p.packed!) / Math.max(1, p.total!)) : 0;
        const bar = counted ? ` [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${p.packed}/${p.total} layers` : '';
        out.write(`\r\x1b[2K${p.stage}${bar}`);
        barShown = true;
        if (p.stage === 'done') end();
        return;
      }
      const text = counted ? `${p.stage} ${p.packed}/${p.total} layers` : p.stage;
      if (text === lastStage) return;
      lastStage = text;
      out.write(`nixery: ${text}\n`);
    },
    line(text) {
      end();
      out.write(`nixery: ${text}\n`);
    },
    end,
  };
}
