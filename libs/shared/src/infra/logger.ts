import pino, { type Logger } from 'pino';

export type { Logger };

/** The root logger: pino JSON, or pino-pretty for a terminal. */
export function createLogger(opts: { level: string; format: 'json' | 'pretty'; name: string }): Logger {
  if (opts.format === 'pretty') {
    return pino({ level: opts.level, name: opts.name, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino({ level: opts.level, name: opts.name });
}
