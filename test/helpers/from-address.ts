/**
 * HTTP requests from a chosen loopback address (127.0.0.2, 127.0.0.3, ...
 * are distinct clients to the server): the client socket binds
 * `localAddress`. `hangUpAfterMs` closes the connection before the answer,
 * as a client that gives up.
 */
import http from 'node:http';
import { MANIFEST_ACCEPT } from './nixery';

/** One answer: status, headers and body text; `status` 0 when the request was hung up on purpose. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** GET `url` from `from` (a loopback address) with extra headers. */
export function getFrom(url: string, from: string, opts: { headers?: Record<string, string>; hangUpAfterMs?: number; method?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', localAddress: from, headers: { Accept: MANIFEST_ACCEPT, ...opts.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    if (opts.hangUpAfterMs !== undefined) {
      const t = setTimeout(() => {
        req.destroy();
        resolve({ status: 0, headers: {}, body: '' });
      }, opts.hangUpAfterMs);
      req.on('response', () => clearTimeout(t));
    }
    req.on('error', (err) => (opts.hangUpAfterMs !== undefined ? undefined : reject(err)));
    req.end();
  });
}

/** The registry error code of an error body, or undefined. */
export function errorCode(a: Answer): string | undefined {
  try {
    return (JSON.parse(a.body) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}
