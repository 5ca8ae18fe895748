/**
 * Validation against the official SPDX 2.3 JSON schema (vendored in
 * test/fixtures/spdx with its licence; see the README there), with ajv.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';

const SCHEMA = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/spdx/spdx-schema-2.3.json'), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(SCHEMA);

/** The schema errors of an SPDX JSON document (empty when it is valid SPDX 2.3). */
export function spdxSchemaErrors(doc: unknown): string[] {
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

/** An SPDX package as the tests read it. */
export interface SpdxPackageView {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  checksums?: { algorithm: string; checksumValue: string }[];
  externalRefs?: { referenceType: string; referenceLocator: string }[];
}

/** An SPDX document as the tests read it. */
export interface SpdxView {
  SPDXID: string;
  documentNamespace: string;
  creationInfo: { created: string };
  packages: SpdxPackageView[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

/** The store path a package names in its external references. */
export function storePathOf(p: SpdxPackageView): string | undefined {
  return p.externalRefs?.find((r) => r.referenceType === 'nix-store-path')?.referenceLocator;
}

/** SPDX element ids as the spec allows them. */
export const SPDX_ID_RE = /^SPDXRef-[A-Za-z0-9.-]+$/;
