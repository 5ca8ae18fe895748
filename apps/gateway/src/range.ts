import { type ByteRange, RegistryError } from '@nixery/shared';

/**
 * Parses an HTTP Range header for an object of `size` bytes. Returns undefined
 * for no (or an ignorable multi-range) header, a range otherwise, and throws
 * RANGE_INVALID (416) when it cannot be satisfied.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) {
    if (header.includes(',')) return undefined;
    throw unsatisfiable(size);
  }
  const [, a, b] = m as unknown as [string, string, string];
  let start: number;
  let end: number;
  if (a === '' && b === '') throw unsatisfiable(size);
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start > end || start >= size) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError('RANGE_INVALID', undefined, { size }, { 'Content-Range': `bytes */${size}` });
}
