import { Transform } from 'node:stream';

/** A pass-through stream that counts the bytes flowing through it. */
export class ByteCounter extends Transform {
  /** Bytes seen so far. */
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}
