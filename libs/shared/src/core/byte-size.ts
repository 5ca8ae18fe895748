/** Sizes written the way operators write them ("10G", "512M", "1.5T", "0"), as bytes. */

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i;

/**
 * Parses a size: a number, optionally with a fraction, then an optional unit
 * K, M, G, T or P (binary multiples, 1K = 1024 bytes, as Nix's own sizes;
 * "KB", "KiB" and lower case mean the same), optionally "B" alone for bytes.
 * Returns whole bytes (rounded down), or an error saying what was wrong.
 *
 *   parseByteSize('10G')   -> { bytes: 10737418240 }
 *   parseByteSize('1.5M')  -> { bytes: 1572864 }
 *   parseByteSize('4096')  -> { bytes: 4096 }
 *   parseByteSize('ten')   -> { error: 'not a size: "ten" (e.g. 10G, 512M, 0)' }
 */
export function parseByteSize(text: string): { bytes: number } | { error: string } {
  const m = SIZE_RE.exec(text.trim());
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) return { error: `not a size: ${JSON.stringify(text)} (e.g. 10G, 512M, 0)` };
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) return { error: `size too large: ${JSON.stringify(text)}` };
  return { bytes };
}
