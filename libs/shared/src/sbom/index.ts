/**
 * sbom: what is inside an image, said in SPDX 2.3 JSON: the document made
 * from the Nix closure (`buildSpdxDocument`), package names and versions
 * from store path names (`parseDrvName`), NAR hashes as hex (`narHashHex`).
 * Never imports anything but core; does no I/O.
 */
export * from './drv-name';
export * from './nar-hash';
export * from './spdx';
