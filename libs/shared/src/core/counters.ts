import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { type Digest, digestFromHex } from './digest';

/** A pass-through stream that counts the bytes flowing through it. */
export class ByteCounter extends Transform {
  /** Bytes seen so far. */
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** A pass-through stream that hashes (sha256) and counts what flows through it. */
export class HashCounter extends ByteCounter {
  private readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    super._transform(chunk, enc, cb);
  }
  /** The digest of everything seen; call once, after the stream ended. */
  digest(): Digest {
    return digestFromHex(this.hash.digest('hex'));
  }
}
