/**
 * Reads an htpasswd file of bcrypt entries, as `htpasswd -B` writes them
 * (`user:$2y$10$...`). Only bcrypt is accepted (`$2y$`, `$2a$`, `$2b$`):
 * the older schemes (crypt, MD5, SHA-1, plain) are too weak for a server on
 * the internet, and a line using one is reported, not silently trusted.
 */

/** Users and their bcrypt hashes, plus the lines that were skipped and why. */
export interface Htpasswd {
  users: ReadonlyMap<string, string>;
  skipped: { line: number; reason: string }[];
}

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/** Parses htpasswd text. Blank lines and `#` comments are ignored. */
export function parseHtpasswd(text: string): Htpasswd {
  const users = new Map<string, string>();
  const skipped: Htpasswd['skipped'] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) return void skipped.push({ line: i + 1, reason: 'not user:hash' });
    const hash = line.slice(colon + 1);
    if (!BCRYPT.test(hash)) return void skipped.push({ line: i + 1, reason: 'not a bcrypt hash (use htpasswd -B)' });
    users.set(line.slice(0, colon), hash);
  });
  return { users, skipped };
}
