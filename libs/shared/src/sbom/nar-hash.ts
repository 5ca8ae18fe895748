/**
 * NAR hashes as Nix prints them, turned into lowercase hex for SPDX
 * checksums. Nix 2.8's `nix path-info --json` prints `sha256:<52 chars of
 * Nix base32>`; newer versions print SRI (`sha256-<base64>`); hex is
 * accepted too.
 */

/** Nix's base32 alphabet (no e, o, u, t). */
const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

/**
 * Decodes Nix base32 (the string's first character holds the hash's last
 * bits, as Nix's printHash32 writes it) into `size` bytes; null when the text
 * is not valid base32 of that size.
 */
export function decodeNixBase32(text: string, size: number): Buffer | null {
  if (text.length !== Math.ceil((size * 8) / 5)) return null;
  const out = Buffer.alloc(size);
  for (let k = 0; k < text.length; k++) {
    const digit = NIX_BASE32.indexOf(text[k]!);
    if (digit < 0) return null;
    const bit = (text.length - 1 - k) * 5;
    const i = Math.floor(bit / 8);
    const j = bit % 8;
    out[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1]! |= carry;
    else if (carry !== 0) return null;
  }
  return out;
}

/** A sha256 NAR hash in any form Nix prints, as 64 lowercase hex; null when it is not a sha256 hash. */
export function narHashHex(narHash: string): string | null {
  const m = /^sha256[:-](.+)$/.exec(narHash);
  if (!m) return null;
  const body = m[1]!;
  if (/^[0-9a-f]{64}$/.test(body)) return body;
  const bytes = narHash[6] === '-' ? Buffer.from(body, 'base64') : decodeNixBase32(body, 32);
  return bytes && bytes.length === 32 ? bytes.toString('hex') : null;
}
