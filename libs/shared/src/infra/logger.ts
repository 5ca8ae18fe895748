import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The root logger: pino JSON, or pino-pretty for a terminal.
 *
 * JSON lines go to stdout asynchronously (issue 15): a line is handed to the
 * kernel at once when no write is in flight, and lines logged while one is
 * are written together after it, so a busy gateway makes one write per batch
 * instead of one per line. Nothing waits for a fill level (a quiet process's
 * last line is written at once), and pino flushes what is left when the
 * process exits.
 */
export function createLogger(opts: { level: string; format: 'json' | 'pretty'; name: string }): Logger {
  if (opts.format === 'pretty') {
    return pino({ level: opts.level, name: opts.name, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino({ level: opts.level, name: opts.name }, pino.destination({ dest: 1, sync: false }));
}
