// Why an answer has no ads (the NoFill answer's no_fill_reason, after OpenRTB's no-bid reasons),
// read from what the decision already knows: whether it was degraded, how many candidates the engine
// returned and how many won. Only an answer with no winners pays for more, and only the `blocked`
// test: the request's block lists against the catalog's distinct advertisers and categories.
import type { Catalog } from '../catalog/catalog';
import { NoFillReason } from '../protocol/schema';
import type { ParsedAdRequest } from './parse_request';

/** The message of a NoFill answer, by its reason (Capacity is a refusal, never a NoFill). */
export const noFillMessages: Partial<Record<NoFillReason, string>> = {
  [NoFillReason.NoEligibleAds]: 'no eligible ad: retrieval, targeting and exclusions left no candidate',
  [NoFillReason.BelowFloor]: 'no candidate cleared the floor, the reserve price or the quality minimum',
  [NoFillReason.Blocked]: "the request's block lists exclude every ad of the catalog",
  [NoFillReason.Deadline]: 'the deadline ran out and the unscored answer had no ad to offer',
};

/**
 * The reason an answer with `winners` ads is empty, NoFillReason.None when it is not. A degraded
 * answer with nothing is put down to the deadline whatever else held, since scoring never ran.
 */
export function noFillReason(parsed: ParsedAdRequest, catalog: Catalog, candidates: number, winners: number, degraded: boolean): NoFillReason {
  if (winners > 0) return NoFillReason.None;
  if (degraded) return NoFillReason.Deadline;
  if (candidates > 0) return NoFillReason.BelowFloor;
  return blockListsExcludeAll(parsed, catalog) ? NoFillReason.Blocked : NoFillReason.NoEligibleAds;
}

interface DistinctIds {
  /** Catalog size the sets were built at, so a catalog that grew is read again. */
  size: number;
  advertisers: ReadonlySet<string>;
  categories: ReadonlySet<string>;
}

const distinctIdsOf = new WeakMap<Catalog, DistinctIds>();

function distinctIds(catalog: Catalog): DistinctIds {
  let ids = distinctIdsOf.get(catalog);
  if (ids === undefined || ids.size !== catalog.size) {
    ids = { size: catalog.size, advertisers: new Set(catalog.advertiserId), categories: new Set(catalog.category) };
    distinctIdsOf.set(catalog, ids);
  }
  return ids;
}

/**
 * True only when the block lists alone leave nothing: they name every advertiser or every category
 * of the catalog. Lists that exclude everything only together (some advertisers, the rest by
 * category or product), or with targeting's help, are reported as NoEligibleAds: telling those apart
 * would take a pass over every ad.
 */
function blockListsExcludeAll(parsed: ParsedAdRequest, catalog: Catalog): boolean {
  const { request } = parsed;
  if (request.blockedAdvertisersLength() === 0 && request.blockedCategoriesLength() === 0) return false;
  const ids = distinctIds(catalog);
  return (
    coversAll(ids.advertisers, request.blockedAdvertisersLength(), (i) => request.blockedAdvertisers(i)) ||
    coversAll(ids.categories, request.blockedCategoriesLength(), (i) => request.blockedCategories(i))
  );
}

function coversAll(all: ReadonlySet<string>, length: number, at: (i: number) => string | null): boolean {
  if (all.size === 0 || length < all.size) return false;
  const named = new Set<string>();
  for (let i = 0; i < length; i++) {
    const id = at(i);
    if (id !== null && all.has(id)) named.add(id);
  }
  return named.size === all.size;
}
