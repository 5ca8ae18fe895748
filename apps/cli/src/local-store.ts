import type { CachedLayer, HeldKey, LayerStore } from '@nixery/shared';

/**
 * The layer cache of one process: a map, and locks that are free unless this
 * process holds them. The CLI builds one image alone, so nothing is shared
 * with another builder; the pipeline's packing is the workers' own.
 */
export class MemoryLayerStore implements LayerStore {
  private readonly layers = new Map<string, CachedLayer>();
  private readonly held = new Set<string>();

  get(layerKey: string): Promise<CachedLayer | null> {
    return Promise.resolve(this.layers.get(layerKey) ?? null);
  }

  put(layerKey: string, layer: CachedLayer): Promise<void> {
    this.layers.set(layerKey, layer);
    return Promise.resolve();
  }

  tryLock(layerKey: string): Promise<HeldKey | null> {
    if (this.held.has(layerKey)) return Promise.resolve(null);
    this.held.add(layerKey);
    return Promise.resolve({
      release: () => {
        this.held.delete(layerKey);
        return Promise.resolve();
      },
    });
  }
}
