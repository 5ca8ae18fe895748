import { RegistryError } from '@nixery/shared';

/** A parsed `tags/list` query: page size `n` and the tag to continue after (`last`). */
export interface TagsQuery {
  n?: number;
  last?: string;
}

/** One page of a tag list, and the `last` value of the next page when there is one. */
export interface TagsPage {
  tags: string[];
  nextLast?: string;
}

const MAX_N = 10_000;

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Reads `n` and `last` from a `tags/list` query string. A malformed or
 * negative `n` is a 400 PAGINATION_NUMBER_INVALID (as in CNCF distribution).
 */
export function parseTagsQuery(query: Record<string, string | string[] | undefined>): TagsQuery {
  const out: TagsQuery = {};
  const n = one(query.n);
  if (n !== undefined && n !== '') {
    if (!/^\d{1,9}$/.test(n) || Number(n) > MAX_N) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be an integer from 0 to ${MAX_N}`, { n });
    }
    out.n = Number(n);
  }
  const last = one(query.last);
  if (last !== undefined && last !== '') out.last = last;
  return out;
}

/**
 * The page of `all` (any order) the query asks for, per the OCI distribution
 * spec: tags in lexical order, only those after `last`, at most `n` (n = 0
 * gives an empty list); `nextLast` is set when more tags follow the page.
 */
export function paginateTags(all: readonly string[], q: TagsQuery): TagsPage {
  let tags = [...new Set(all)].sort();
  if (q.last !== undefined) {
    const last = q.last;
    tags = tags.filter((t) => t > last);
  }
  if (q.n === undefined || tags.length <= q.n) return { tags };
  const page = tags.slice(0, q.n);
  return q.n > 0 ? { tags: page, nextLast: page[page.length - 1]! } : { tags: page };
}

/** The `Link` header value pointing at the next page. */
export function nextPageLink(name: string, n: number, last: string): string {
  return `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}
