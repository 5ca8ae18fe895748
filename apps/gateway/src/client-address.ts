import { BlockList, isIP } from 'node:net';
import type { Context, Middleware } from 'koa';

/**
 * Who a request comes from, as seen through trusted proxies only (issue 12).
 * `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto` count only
 * when the direct peer is in NIXERY_TRUSTED_PROXIES: X-Forwarded-For is
 * walked from the right, skipping trusted hops, and the first untrusted
 * address is the client (all trusted: the leftmost). Koa's `app.proxy`
 * (which trusts every peer) stays off.
 */
export interface ClientInfo {
  /** The client's address (IPv4-mapped IPv6 written as IPv4). */
  address: string;
  /** host[:port] the client asked for: a trusted proxy's X-Forwarded-Host, else the Host header. */
  host: string;
  /** `http` or `https`: a trusted proxy's X-Forwarded-Proto, else the connection's. */
  proto: 'http' | 'https';
}

/**
 * The set of trusted proxies, from CIDRs or addresses as the config checked
 * them; null when there are none (the default), so a request costs no
 * address check (issue 15: `BlockList.check` takes a few microseconds).
 */
export function trustedProxySet(cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addr = '', bits] = entry.split('/');
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/** `::ffff:127.0.0.1` -> `127.0.0.1`; anything else as is. */
function plainAddress(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m?.[1] ?? addr;
}

function isTrusted(list: BlockList | null, addr: string): boolean {
  if (!list) return false;
  const family = isIP(addr);
  return family !== 0 && list.check(addr, family === 6 ? 'ipv6' : 'ipv4');
}

/** The first value of a comma-separated forwarded header, trimmed, or undefined. */
function firstValue(header: string | string[] | undefined): string | undefined {
  const v = (Array.isArray(header) ? header[0] : header)?.split(',')[0]?.trim();
  return v ? v : undefined;
}

/** The client of one request, given its peer address and headers. */
export function clientInfo(list: BlockList | null, peer: string, headers: Record<string, string | string[] | undefined>, encrypted: boolean): ClientInfo {
  const direct = plainAddress(peer);
  const ownProto = encrypted ? 'https' : 'http';
  const host = firstValue(headers.host) ?? '';
  if (!isTrusted(list, direct)) return { address: direct, host, proto: ownProto };
  const xff = headers['x-forwarded-for'];
  const hops = (Array.isArray(xff) ? xff.join(',') : xff ?? '')
    .split(',')
    .map((s) => plainAddress(s.trim()))
    .filter((s) => isIP(s) !== 0);
  let address = direct;
  for (let i = hops.length - 1; i >= 0; i--) {
    address = hops[i] as string;
    if (!isTrusted(list, address)) break;
  }
  const fwdProto = firstValue(headers['x-forwarded-proto'])?.toLowerCase();
  return {
    address,
    host: firstValue(headers['x-forwarded-host']) ?? host,
    proto: fwdProto === 'https' || fwdProto === 'http' ? fwdProto : ownProto,
  };
}

/** Koa middleware setting `ctx.state.client` ({@link ClientInfo}) for everything after it. */
export function clientAddress(trusted: readonly string[]): Middleware {
  const list = trustedProxySet(trusted);
  return async (ctx, next) => {
    const socket = ctx.req.socket as { remoteAddress?: string; encrypted?: boolean };
    ctx.state.client = clientInfo(list, socket.remoteAddress ?? '', ctx.headers, socket.encrypted === true);
    await next();
  };
}

/**
 * The key admission counts a request under: `user:<name>` when an
 * authentication middleware set `ctx.state.user`, else `addr:<address>`.
 */
export function clientKey(ctx: Context): string {
  const user = ctx.state.user as string | undefined;
  if (user) return `user:${user}`;
  const client = ctx.state.client as ClientInfo | undefined;
  return `addr:${client?.address ?? plainAddress(ctx.req.socket.remoteAddress ?? '')}`;
}
