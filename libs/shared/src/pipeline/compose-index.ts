import type { Failure } from '../core/failure';
import { type PublishedImage, buildIndexDocuments } from '../protocol/image-documents';
import type { NixSystem } from '../protocol/image-spec';
import { PLATFORM_OF } from '../protocol/platforms';

/** How one platform's build of a multi-platform image ended. */
export type PlatformOutcome = { system: NixSystem; ok: true; image: PublishedImage } | { system: NixSystem; ok: false; failure: Failure };

/** The index to publish, and the platforms left out; or the failure that fails the whole request. */
export type ComposedIndex =
  | { ok: true; index: PublishedImage; omitted: Array<{ system: NixSystem; packages: readonly string[] }> }
  | { ok: false; failure: Failure; system: NixSystem };

/**
 * Composes a multi-platform image's index from its platforms' outcomes
 * (issue 13), only from images that were published. The policy:
 * - the default platform (the one a client without index support gets)
 *   must have built: its failure is the request's failure;
 * - another platform whose packages do not exist there (`unknown_packages`)
 *   is left out of the index;
 * - any other failure of any platform (Nix, storage, Redis, no worker, the
 *   wait) fails the request with that failure: nothing is published, the
 *   next pull tries again.
 * Pure: the same outcomes give the same index bytes. Entries follow `outcomes`' order.
 */
export function composeIndex(outcomes: readonly PlatformOutcome[], defaultSystem: NixSystem, revision: string): ComposedIndex {
  const first = outcomes.find((o) => o.system === defaultSystem) ?? outcomes[0];
  if (!first) return { ok: false, failure: { kind: 'internal', message: 'no platform configured' }, system: defaultSystem };
  if (!first.ok) return { ok: false, failure: first.failure, system: first.system };
  const omitted: Array<{ system: NixSystem; packages: readonly string[] }> = [];
  for (const o of outcomes) {
    if (o.ok) continue;
    if (o.failure.kind !== 'unknown_packages') return { ok: false, failure: o.failure, system: o.system };
    omitted.push({ system: o.system, packages: o.failure.packages });
  }
  const entries = outcomes.flatMap((o) => (o.ok ? [{ platform: PLATFORM_OF[o.system], image: o.image }] : []));
  return { ok: true, index: buildIndexDocuments(entries, revision), omitted };
}
