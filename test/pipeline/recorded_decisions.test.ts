// The decision after the engine (calibrate, quality, auction) on a fixed set of recorded inputs:
// a seeded catalog, calibration maps and engine results, with the winners and prices they gave
// when recorded. Work on the JS share must leave every winner and price as it was; a deliberate
// change of the rules updates the recorded digest and says why.
import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { catalogFromJson } from '../../src/catalog/catalog';
import type { CatalogJson } from '../../src/catalog/catalog_json';
import type { CalibrationParams } from '../../src/calibration/calibrate';
import { defaults } from '../../src/config';
import type { ScoreResult } from '../../src/engine/addon';
import { placementRules } from '../../src/engine/serving';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { AuctionType, Placement } from '../../src/protocol/schema';
import { auctionCandidates } from '../../src/pipeline/auction';
import { calibrateCandidates } from '../../src/pipeline/calibrate_candidates';
import { parseAdRequest } from '../../src/pipeline/parse_request';
import { scoreQuality } from '../../src/pipeline/quality';
import { DecisionScratch } from '../../src/pipeline/scratch';
import { seededRandom } from '../helpers/random';

const random = seededRandom(20261201);
const adCount = 600;
const bidTypes = ['CPC', 'CPM', 'CPA'] as const;
// Ads 210 apart share their campaign (30 of them) and landing quality, so candidates with the same
// engine scores tie exactly and the lower ad index must win.
const landingQuality = Array.from({ length: 210 }, () => 0.2 + random() * 0.8);
const catalogJson: CatalogJson = {
  advertisers: [{ id: 'adv-0', name: 'Advertiser', category: 'shoes' }],
  campaigns: Array.from({ length: 30 }, (_, c) => ({
    id: `camp-${c}`,
    advertiser_id: 'adv-0',
    bid_type: bidTypes[c % 3]!,
    bid_micros: [1, 20, 1500][c % 3]! * (50_000 + Math.floor(random() * 2_000_000)),
    daily_budget_micros: 1e12,
    pacing: 'asap',
    status: 'active',
  })),
  ads: Array.from({ length: adCount }, (_, a) => ({
    id: `ad-${a}`,
    campaign_id: `camp-${a % 30}`,
    advertiser_id: 'adv-0',
    product_id: `p-${a}`,
    category: 'shoes',
    format: 'text',
    title: `Ad ${a}`,
    keywords: [],
    landing_url: `https://example.com/${a}`,
    image_url: `https://example.com/${a}.jpg`,
    price_micros: 1_000_000,
    landing_quality: landingQuality[a % 210]!,
    rating: 4,
  })),
};
const catalog = catalogFromJson(catalogJson);
const knots = Array.from({ length: 24 }, (_, k) => -8 + k * 0.35);
const calibration: { ctr: CalibrationParams; cvr: CalibrationParams } = {
  ctr: { kind: 'isotonic', x: knots, y: knots.map((x) => 1 / (1 + Math.exp(-x))) },
  cvr: { kind: 'platt', a: 0.9, b: -1.2 },
};
const history = { ctr: new Float64Array(adCount).fill(0.02), cvr: new Float64Array(adCount).fill(0.05) };
const rules = placementRules(defaults);
const placements = [Placement.Search, Placement.ProductPage, Placement.Category, Placement.Homepage, Placement.Cart];
const auctionTypes = [undefined, AuctionType.Gsp, AuctionType.Vcg, AuctionType.SecondPrice, AuctionType.FirstPrice];

/**
 * One recorded request: its bytes and the engine's result for it. Candidates i and i + 30 are ads
 * 210 apart; the first 30 pairs get the same scores, so they tie.
 */
function recordedRequest(n: number): { body: Uint8Array; result: ScoreResult } {
  const count = 1 + Math.floor(random() * 300);
  const adIndex = new Int32Array(count);
  const first = Math.floor(random() * adCount);
  for (let i = 0; i < count; i++) adIndex[i] = (first + i * 7) % adCount;
  const logit = (): number => (random() < 0.05 ? -3 : -9 + random() * 10);
  const light = Float32Array.from(adIndex, () => (random() < 0.02 ? -1 : random()));
  const ctrLogit = Float32Array.from(adIndex, logit);
  const cvrLogit = Float32Array.from(adIndex, logit);
  for (let i = 0; i < 30 && i + 30 < count; i++) {
    light[i + 30] = light[i]!;
    ctrLogit[i + 30] = ctrLogit[i]!;
    cvrLogit[i + 30] = cvrLogit[i]!;
  }
  return {
    body: encodeAdRequest({
      id: `recorded-${n}`,
      placement: placements[n % placements.length],
      slots: 1 + (n % 4),
      floorCpmMicros: BigInt(n % 3 === 0 ? Math.floor(random() * 5_000_000) : 0),
      auctionType: auctionTypes[Math.floor(n / 5) % auctionTypes.length],
    }),
    result: {
      adIndex,
      light,
      ctrLogit,
      cvrLogit,
      stageNs: new Float64Array(6),
      batchSize: 1,
      queueWaitNs: 0,
      degraded: n % 50 === 49,
    },
  };
}

const recorded = Array.from({ length: 400 }, (_, n) => recordedRequest(n));

describe('recorded decisions', () => {
  it('give the winners, prices and adjusted eCPMs they gave when recorded', () => {
    const scratch = new DecisionScratch();
    const decisions: string[] = [];
    let winners = 0;
    for (const { body, result } of recorded) {
      const parsed = parseAdRequest(body, defaults);
      const count = result.adIndex.length;
      scratch.ensure(count, parsed.slots);
      calibrateCandidates(result, calibration, history, scratch);
      scoreQuality(result, catalog, scratch);
      const outcome = auctionCandidates(parsed, rules, catalog, count, scratch);
      const slots: string[] = [];
      for (let slot = 0; slot < outcome.winners; slot++) {
        const candidate = outcome.candidate[slot]!;
        slots.push(`${scratch.adIndex[candidate]}:${outcome.priceMicros[slot]}:${outcome.adjEcpmMicros[slot]}:${scratch.quality[candidate]}`);
      }
      winners += outcome.winners;
      decisions.push(slots.join(','));
    }
    // Enough auctions filled, and not all the same way, for the digest to mean something.
    expect(winners).toBeGreaterThan(500);
    expect(new Set(decisions).size).toBeGreaterThan(350);
    expect(createHash('sha256').update(decisions.join('\n')).digest('hex')).toBe('14367c9dfc10015c50bf6bd3eb02f9c8198e136c45272ff24fdfefdaca0c59e7');
  });
});
