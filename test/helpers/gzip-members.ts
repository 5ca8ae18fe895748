/**
 * Reads a gzip file as its sequence of members (RFC 1952 section 2.2), so
 * tests can check that a layer really is several concatenated members and
 * what each header says. Handles the headers Nixery writes (no optional
 * fields); anything else throws.
 */
import { inflateRawSync } from 'node:zlib';

/** One gzip member of a file. */
export interface GzipMember {
  /** Byte offset of the member's header in the file. */
  offset: number;
  /** Bytes of the member, header and trailer included. */
  size: number;
  /** Its decompressed bytes. */
  data: Buffer;
  /** Header fields that must be fixed for reproducible layers. */
  mtime: number;
  xfl: number;
  os: number;
}

/** Splits `gz` into its members, checking each one's CRC-32 and length trailer. */
export function gzipMembers(gz: Buffer): GzipMember[] {
  const members: GzipMember[] = [];
  let off = 0;
  while (off < gz.length) {
    if (gz[off] !== 0x1f || gz[off + 1] !== 0x8b || gz[off + 2] !== 8) throw new Error(`no gzip member header at offset ${off}`);
    if (gz[off + 3] !== 0) throw new Error(`member at ${off} has header flags ${gz[off + 3]}; Nixery writes none`);
    const res = inflateRawSync(gz.subarray(off + 10), { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    const end = off + 10 + res.engine.bytesWritten;
    const crc = gz.readUInt32LE(end);
    const isize = gz.readUInt32LE(end + 4);
    if (crc !== crc32Of(res.buffer)) throw new Error(`member at ${off}: CRC-32 mismatch`);
    if (isize !== res.buffer.length % 2 ** 32) throw new Error(`member at ${off}: length mismatch`);
    members.push({ offset: off, size: end + 8 - off, data: res.buffer, mtime: gz.readUInt32LE(off + 4), xfl: gz[off + 8]!, os: gz[off + 9]! });
    off = end + 8;
  }
  return members;
}

/** CRC-32 (IEEE, as gzip uses it), for checking gzip trailers in tests (Node 20 has no zlib.crc32). */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** The CRC-32 of `buf`. */
function crc32Of(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
