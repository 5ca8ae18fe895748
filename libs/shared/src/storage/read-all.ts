import type { StorageDriver, StorageKey } from './driver';

/** The whole of a small object (a manifest, a referrers index) as text; null when it is missing. */
export async function readText(storage: StorageDriver, key: StorageKey): Promise<string | null> {
  const obj = await storage.read(key);
  if (!obj) return null;
  const chunks: Buffer[] = [];
  for await (const c of obj.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
