import { runCommand } from '../infra/run-command';
import type { LoadOutcome } from './refresh';
import { redactUrl } from './refresh';

/** A git ref resolved to a commit. */
export interface ResolvedRef {
  /** The commit (40 lowercase hex). */
  commit: string;
  /** The full ref holding it (refs/heads/x, refs/tags/x), when known; Nix fetches only that ref. */
  ref?: string;
}

/** A repository's branches and tags at one moment (one `git ls-remote`). */
export interface GitRefs {
  /** The default branch (HEAD's target, e.g. refs/heads/main) and its commit, when the remote says. */
  head?: ResolvedRef;
  /** Branch name -> commit. */
  heads: Map<string, string>;
  /** Tag name -> commit (annotated tags peeled). */
  tags: Map<string, string>;
}

const COMMIT_RE = /^[0-9a-f]{40}$/;

/** Whether an image tag is a full commit hash (used as is, no lookup). */
export function isCommit(tag: string): boolean {
  return COMMIT_RE.test(tag);
}

/**
 * Parses `git ls-remote --symref` output: HEAD's symref, branches, tags
 * (annotated tags peeled to their commit via the `^{}` lines).
 */
export function parseLsRemote(stdout: string): GitRefs {
  const heads = new Map<string, string>();
  const tags = new Map<string, string>();
  const peeled = new Map<string, string>();
  let headRef: string | undefined;
  let headCommit: string | undefined;
  for (const line of stdout.split('\n')) {
    const [a, b] = line.trim().split(/\s+/);
    if (!a || !b) continue;
    if (a === 'ref:') {
      const [target, name] = line.slice(4).trim().split(/\s+/);
      if (name === 'HEAD' && target?.startsWith('refs/heads/')) headRef = target;
      continue;
    }
    if (!COMMIT_RE.test(a)) continue;
    if (b === 'HEAD') headCommit = a;
    else if (b.startsWith('refs/heads/')) heads.set(b.slice('refs/heads/'.length), a);
    else if (b.startsWith('refs/tags/') && b.endsWith('^{}')) peeled.set(b.slice('refs/tags/'.length, -3), a);
    else if (b.startsWith('refs/tags/')) tags.set(b.slice('refs/tags/'.length), a);
  }
  for (const [name, commit] of peeled) tags.set(name, commit);
  let head: ResolvedRef | undefined;
  if (headRef) {
    const commit = heads.get(headRef.slice('refs/heads/'.length)) ?? headCommit;
    if (commit) head = { commit, ref: headRef };
  } else if (headCommit) {
    head = { commit: headCommit };
  }
  return { ...(head ? { head } : {}), heads, tags };
}

/**
 * Lists a repository's default branch, branches and tags with one
 * `git ls-remote --symref` (using the host's git configuration and
 * credentials; never prompts). Failures come back as data.
 */
export async function listGitRefs(url: string, timeoutMs: number): Promise<LoadOutcome<GitRefs>> {
  // runCommand starts git in a new session (no controlling terminal), so it cannot prompt;
  // it inherits this process's environment (HOME, credential helpers, SSH agent).
  const res = await runCommand('git', ['ls-remote', '--symref', '--', url, 'HEAD', 'refs/heads/*', 'refs/tags/*'], {
    timeoutMs,
  });
  if (res.code !== 0 || res.timedOut) {
    const why = res.timedOut
      ? `timed out after ${timeoutMs} ms`
      : res.spawnError ?? (res.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${res.code}`);
    return { ok: false, error: `git ls-remote ${redactUrl(url)} failed: ${redactUrl(why).slice(0, 500)}` };
  }
  return { ok: true, value: parseLsRemote(res.stdout) };
}

/**
 * Resolves an image tag against a repository's refs: `latest` -> the default
 * branch, a 40-hex tag -> that commit (as is), anything else -> the branch,
 * else the tag, of that name. Null when there is no such ref.
 */
export function resolveTag(refs: GitRefs, tag: string): ResolvedRef | null {
  if (isCommit(tag)) return { commit: tag };
  if (tag === 'latest') return refs.head ?? null;
  const branch = refs.heads.get(tag);
  if (branch) return { commit: branch, ref: `refs/heads/${tag}` };
  const t = refs.tags.get(tag);
  if (t) return { commit: t, ref: `refs/tags/${tag}` };
  return null;
}

/** Branch and tag names that are valid image tags, plus `latest`, sorted and unique. */
export function tagNames(refs: GitRefs): string[] {
  const names = new Set<string>(['latest']);
  for (const n of [...refs.heads.keys(), ...refs.tags.keys()]) if (/^[\w][\w.-]{0,127}$/.test(n)) names.add(n);
  return [...names].sort();
}
