import { runCommand } from '../nix';

/** A git ref resolved to a commit. */
export interface ResolvedRef {
  commit: string;
  /** The full ref name it came from (refs/heads/x, refs/tags/x, HEAD), or undefined for a commit given as is. */
  ref?: string;
}

const COMMIT_RE = /^[0-9a-f]{40}$/;

/**
 * Resolves an image tag against a git repository with `git ls-remote` (using
 * the host's git credentials): `latest` -> the default branch (HEAD), a
 * 40-hex tag -> that commit, anything else -> the branch or tag of that name
 * (annotated tags peeled to their commit). Returns null when no such ref exists.
 */
export async function resolveGitRef(url: string, tag: string, timeoutMs: number): Promise<ResolvedRef | null> {
  if (COMMIT_RE.test(tag)) return { commit: tag };
  const wanted = tag === 'latest' ? ['HEAD'] : [`refs/heads/${tag}`, `refs/tags/${tag}`];
  const res = await runCommand('git', ['ls-remote', '--', url, ...wanted, ...wanted.map((w) => `${w}^{}`)], {
    timeoutMs,
    env: { GIT_TERMINAL_PROMPT: '0' },
  });
  if (res.code !== 0) throw new Error(`git ls-remote failed: ${res.stderr.trim().slice(-500)}`);
  const refs = new Map<string, string>();
  for (const line of res.stdout.split('\n')) {
    const [sha, name] = line.trim().split(/\s+/);
    if (sha && name && COMMIT_RE.test(sha)) refs.set(name, sha);
  }
  for (const w of wanted) {
    const commit = refs.get(`${w}^{}`) ?? refs.get(w);
    if (commit) return { commit, ref: w };
  }
  return null;
}

/** Lists branch and tag names of a repository (for tags/list). */
export async function listGitRefs(url: string, timeoutMs: number): Promise<string[]> {
  const res = await runCommand('git', ['ls-remote', '--heads', '--tags', '--', url], {
    timeoutMs,
    env: { GIT_TERMINAL_PROMPT: '0' },
  });
  if (res.code !== 0) throw new Error(`git ls-remote failed: ${res.stderr.trim().slice(-500)}`);
  const names = new Set<string>();
  for (const line of res.stdout.split('\n')) {
    const name = line.trim().split(/\s+/)[1];
    if (!name || name.endsWith('^{}')) continue;
    names.add(name.replace(/^refs\/(heads|tags)\//, ''));
  }
  return [...names].sort();
}
