import { createHash } from 'node:crypto';
import { type Digest, sha256Digest } from '../core/digest';
import type { ClosureGraph } from '../core/graph';
import { storePathName } from '../core/store-path';
import { parseDrvName } from './drv-name';
import { narHashHex } from './nar-hash';

/** The media type of an SPDX JSON document (the SBOM blob and its artifact manifest's `artifactType`). */
export const SPDX_MEDIA_TYPE = 'application/spdx+json';

/**
 * `creationInfo.created` of every SBOM: the time Nix gives every file in the
 * store (1 s past the epoch). SPDX requires a creation time; a wall-clock one
 * would give the same image a new SBOM digest on each build, so the document
 * carries the one time that belongs to its contents.
 */
export const SBOM_CREATED = '1970-01-01T00:00:01Z';

/** What an SBOM is made from: one image's Nix closure and where its packages came from. */
export interface SbomInput {
  /** The runtime closure: every store path, its NAR hash and size, its references. */
  graph: ClosureGraph;
  /** The requested packages (resolved attribute and output path): the document describes these. */
  topLevel: readonly { attr: string; storePath: string }[];
  /** The package source: its kind (`git`, `path`, `nixpkgs`, ...) and pinned revision. Never a server path. */
  source: { kind: string; revision: string };
  /** The Nix system the closure was built for, e.g. x86_64-linux. */
  system: string;
}

/** A serialised SPDX document with its digest. */
export interface SbomDocument {
  body: string;
  digest: Digest;
  size: number;
}

interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  downloadLocation: 'NOASSERTION';
  filesAnalyzed: false;
  licenseConcluded: 'NOASSERTION';
  licenseDeclared: 'NOASSERTION';
  copyrightText: 'NOASSERTION';
  checksums?: { algorithm: 'SHA256'; checksumValue: string }[];
  externalRefs?: { referenceCategory: 'OTHER'; referenceType: string; referenceLocator: string }[];
  comment: string;
}

interface SpdxRelationship {
  spdxElementId: string;
  relationshipType: 'DESCRIBES' | 'DEPENDS_ON' | 'GENERATED_FROM';
  relatedSpdxElement: string;
}

const DOCUMENT_ID = 'SPDXRef-DOCUMENT';
const SOURCE_ID = 'SPDXRef-PackageSource';

/** The SPDXID of a store path: its store hash (unique in the closure) and its name, made fit for `SPDXRef-[A-Za-z0-9.-]+`. */
export function storePathSpdxId(storePath: string): string {
  const base = storePath.slice(storePath.lastIndexOf('/') + 1);
  return `SPDXRef-Nix-${base.replace(/[^A-Za-z0-9.-]/g, '-')}`;
}

function storePathPackage(graph: ClosureGraph, storePath: string): SpdxPackage {
  const info = graph.paths[storePath];
  const { name, version } = parseDrvName(storePathName(storePath));
  const hex = info?.narHash ? narHashHex(info.narHash) : null;
  return {
    SPDXID: storePathSpdxId(storePath),
    name,
    ...(version ? { versionInfo: version } : {}),
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: 'NOASSERTION',
    copyrightText: 'NOASSERTION',
    ...(hex ? { checksums: [{ algorithm: 'SHA256' as const, checksumValue: hex }] } : {}),
    externalRefs: [{ referenceCategory: 'OTHER', referenceType: 'nix-store-path', referenceLocator: storePath }],
    comment: `Nix store path ${storePath}; NAR size ${info?.narSize ?? 0} bytes; the checksum is the SHA-256 of its NAR serialisation (Nix's narHash).`,
  };
}

/** A deterministic URN for the document: a UUID (version 8, RFC 9562) from the SHA-256 of its contents. */
function namespaceOf(content: string): string {
  const h = createHash('sha256').update(content).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * The SPDX 2.3 JSON document of one image, pure: every store path of the
 * closure is a package (name and version split as `builtins.parseDrvName`
 * does, NAR hash as its SHA256 checksum, store path as an external
 * reference, NAR size in the comment), each reference between two paths is
 * `DEPENDS_ON`, the document `DESCRIBES` the requested packages, and those
 * are `GENERATED_FROM` the package source (a package whose version is the
 * pinned revision). Same closure, packages, source and system -> same
 * bytes, so the same image gets the same SBOM digest on any worker.
 *
 * Example: hello from the bundled set gives packages hello and glibc (and
 * whatever else the closure holds), `DOCUMENT DESCRIBES hello`,
 * `hello DEPENDS_ON glibc`, `hello GENERATED_FROM PackageSource`.
 */
export function buildSpdxDocument(inp: SbomInput): SbomDocument {
  const paths = Object.keys(inp.graph.paths).sort();
  const top = [...new Map(inp.topLevel.map((t) => [t.storePath, t])).values()].sort((a, b) => (a.storePath < b.storePath ? -1 : a.storePath > b.storePath ? 1 : 0));
  const attrs = [...new Set(top.map((t) => t.attr))].sort();
  const source: SpdxPackage = {
    SPDXID: SOURCE_ID,
    name: `package-source-${inp.source.kind}`,
    ...(inp.source.revision ? { versionInfo: inp.source.revision } : {}),
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: 'NOASSERTION',
    copyrightText: 'NOASSERTION',
    comment: `The package set the image was built from (${inp.source.kind}), pinned at revision ${inp.source.revision || 'unknown'}.`,
  };
  const ids = new Map(paths.map((p) => [p, storePathSpdxId(p)]));
  const idOf = (p: string) => ids.get(p) ?? storePathSpdxId(p);
  const relationships: SpdxRelationship[] = [];
  for (const t of top) relationships.push({ spdxElementId: DOCUMENT_ID, relationshipType: 'DESCRIBES', relatedSpdxElement: idOf(t.storePath) });
  for (const p of paths) {
    for (const r of inp.graph.paths[p]!.references) {
      if (r !== p && ids.has(r)) relationships.push({ spdxElementId: idOf(p), relationshipType: 'DEPENDS_ON', relatedSpdxElement: idOf(r) });
    }
  }
  for (const t of top) relationships.push({ spdxElementId: idOf(t.storePath), relationshipType: 'GENERATED_FROM', relatedSpdxElement: SOURCE_ID });

  const body = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: DOCUMENT_ID,
    name: `nixery-image-${attrs.join('-') || 'empty'}-${inp.system}`,
    documentNamespace: '',
    creationInfo: {
      created: SBOM_CREATED,
      creators: ['Tool: nixery-ts'],
      comment: `Made from the Nix runtime closure of the image (${inp.system}); the creation time is the store's fixed file time, so the same image has the same SBOM.`,
    },
    packages: [...paths.map((p) => storePathPackage(inp.graph, p)), source],
    relationships,
  };
  body.documentNamespace = namespaceOf(JSON.stringify(body));
  const text = JSON.stringify(body);
  return { body: text, digest: sha256Digest(text), size: Buffer.byteLength(text) };
}
