/**
 * The server's own filesystem paths (the package set, the Nix directory,
 * the checkout, the storage root) never reach a client (issue 12): text
 * shown in error bodies, on the pages and in /api/status goes through one
 * redactor that replaces each with a neutral name. Nix's error messages
 * are the usual carrier (`at /srv/pkgs/default.nix:12:5:`).
 */

/** A path and the name shown instead. */
export interface RedactedPath {
  path: string;
  label: string;
}

/** Text -> text with every listed path replaced (longest first, so a path inside another is not half-replaced). */
export function pathRedactor(paths: readonly RedactedPath[]): (text: string) => string {
  const list = paths.filter((p) => p.path.length > 1).sort((a, b) => b.path.length - a.path.length);
  return (text) => list.reduce((t, p) => t.split(p.path).join(p.label), text);
}

/** A JSON value with every string in it redacted. */
export function redactJson<T>(value: T, redact: (text: string) => string): T {
  return JSON.parse(redact(JSON.stringify(value))) as T;
}
