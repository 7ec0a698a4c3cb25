import { describe, expect, it } from 'vitest';

import { type AuctionCandidates, type AuctionRules, auctionOutcome, runAuction } from '../../src/auction/auction';
import { BidType } from '../../src/protocol/schema';
import { seededRandom } from '../helpers/random';

interface Ad {
  bid: number; // dollars
  pCtr: number;
  quality: number;
  pCvr?: number;
  type?: BidType;
}

function candidates(ads: Ad[]): AuctionCandidates {
  return {
    count: ads.length,
    bidType: Uint8Array.from(ads.map((ad) => ad.type ?? BidType.Cpc)),
    bidMicros: Float64Array.from(ads.map((ad) => Math.round(ad.bid * 1e6))),
    pCtr: Float64Array.from(ads.map((ad) => ad.pCtr)),
    pCvr: Float64Array.from(ads.map((ad) => ad.pCvr ?? 0.1)),
    quality: Float64Array.from(ads.map((ad) => ad.quality)),
    tiebreak: Int32Array.from(ads.map((_, i) => i)),
  };
}

const rules = (overrides: Partial<AuctionRules> = {}): AuctionRules => ({
  mechanism: 'gsp',
  slots: 1,
  floorCpmMicros: 0,
  reserveMicros: [0, 0, 0],
  incrementMicros: 10_000,
  positionEffects: [1, 0.7, 0.5, 0.35],
  minQuality: 0,
  ...overrides,
});

function run(ads: Ad[], overrides: Partial<AuctionRules> = {}) {
  const out = runAuction(candidates(ads), rules(overrides), auctionOutcome(8));
  return { winners: Array.from(out.candidate.subarray(0, out.winners)), prices: Array.from(out.priceMicros.subarray(0, out.winners)) };
}

describe('docs/auction.md worked examples (GSP, CPC, ε = $0.01)', () => {
  it('ranks by adjusted eCPM, not bid', () => {
    expect(
      run([
        { bid: 2.0, pCtr: 0.03, quality: 0.8 },
        { bid: 1.5, pCtr: 0.05, quality: 1.2 },
      ]).winners,
    ).toEqual([1]);
  });

  it('single slot: W pays 1,330,000', () => {
    expect(
      run([
        { bid: 2.0, pCtr: 0.05, quality: 1.2 },
        { bid: 1.8, pCtr: 0.04, quality: 1.1 },
      ]).prices,
    ).toEqual([1_330_000]);
  });

  it('quality lowers the price: A pays 1,343,334', () => {
    expect(
      run([
        { bid: 2.0, pCtr: 0.05, quality: 1.5 },
        { bid: 2.5, pCtr: 0.04, quality: 1.0 },
      ]),
    ).toEqual({ winners: [0], prices: [1_343_334] });
  });

  it('three slots: 2,176,667 / 1,856,154 / 1,843,334', () => {
    const ads = [
      { bid: 3.0, pCtr: 0.06, quality: 1.4 },
      { bid: 2.8, pCtr: 0.05, quality: 1.3 },
      { bid: 2.5, pCtr: 0.04, quality: 1.2 },
      { bid: 2.0, pCtr: 0.04, quality: 1.1 },
    ];
    expect(run(ads, { slots: 3 })).toEqual({ winners: [0, 1, 2], prices: [2_176_667, 1_856_154, 1_843_334] });
  });

  it('reserve binds: W pays 250,000', () => {
    const ads = [
      { bid: 1.0, pCtr: 0.03, quality: 1.1 },
      { bid: 0.2, pCtr: 0.02, quality: 1.0 },
    ];
    expect(run(ads, { reserveMicros: [250_000, 0, 0] })).toEqual({ winners: [0], prices: [250_000] });
    // Without the reserve the runner-up sets the price: 4,000,000 / 33 rounded up, plus ε.
    expect(run(ads).prices).toEqual([131_213]);
  });
});

describe('VCG with a reserve (docs/auction.md worked example)', () => {
  const theta = [1, 0.5];
  const ads = [
    { bid: 3.0, pCtr: 0.1, quality: 1 },
    { bid: 2.0, pCtr: 0.1, quality: 1 },
  ];

  it('treats the reserve as a phantom competitor: A pays 1,750,000, B pays 1,500,000', () => {
    expect(run(ads, { mechanism: 'vcg', slots: 2, positionEffects: theta, reserveMicros: [1_500_000, 0, 0] })).toEqual({
      winners: [0, 1],
      prices: [1_750_000, 1_500_000],
    });
  });

  it('adds no ε, and without a reserve charges the externality', () => {
    // A: (0.5 × 200) / 100 = $1.00; B: nothing below it, so $0.
    expect(run(ads, { mechanism: 'vcg', slots: 2, positionEffects: theta })).toEqual({ winners: [0, 1], prices: [1_000_000, 0] });
  });

  it('lets the reserve bind only where it exceeds the competitor it replaces, and caps at the bid', () => {
    // A $1.80 reserve (R = $180) lies under B's $200 for A's first term only: A pays (0.5 × 200 + 0.5 × 180) / 100.
    expect(run(ads, { mechanism: 'vcg', slots: 2, positionEffects: theta, reserveMicros: [1_800_000, 0, 0] }).prices).toEqual([1_900_000, 1_800_000]);
    // One slot: VCG is the second price with the reserve as a floor under it.
    expect(run(ads, { mechanism: 'vcg', slots: 1, positionEffects: theta, reserveMicros: [2_500_000, 0, 0] })).toEqual({ winners: [0], prices: [2_500_000] });
  });
});

describe('docs/auction.md worked examples: VCG against GSP, floors and reserves as gates', () => {
  const three = [
    { bid: 3.0, pCtr: 0.1, quality: 1 },
    { bid: 2.0, pCtr: 0.1, quality: 1 },
    { bid: 1.0, pCtr: 0.1, quality: 1 },
  ];

  it('two slots at the default position effects: VCG charges 1,250,000 and 1,000,000 where GSP charges 2,010,000 and 1,010,000', () => {
    const slots = { slots: 2, positionEffects: [1, 0.75] };
    // A: ((1 - 0.75) × 200 + 0.75 × 100) / (1 × 100); B: (0.75 × 100) / (0.75 × 100).
    expect(run(three, { ...slots, mechanism: 'vcg' })).toEqual({ winners: [0, 1], prices: [1_250_000, 1_000_000] });
    expect(run(three, { ...slots, mechanism: 'gsp' })).toEqual({ winners: [0, 1], prices: [2_010_000, 1_010_000] });
  });

  it('a floor above the runner-up: it drops B, and stands in for the missing competitor in both mechanisms', () => {
    const floor = { floorCpmMicros: 250_000_000, slots: 2, positionEffects: [1, 0.5] };
    // Only A ($300) clears a $250 floor; 250 / 100 = $2.50, plus ε under GSP.
    expect(run(three, { ...floor, mechanism: 'vcg' })).toEqual({ winners: [0], prices: [2_500_000] });
    expect(run(three, { ...floor, mechanism: 'gsp' })).toEqual({ winners: [0], prices: [2_510_000] });
  });

  it('a bid under its reserve does not take part, whatever its adjusted eCPM', () => {
    // A: $0.04 × 0.5 × 1000 = $20 but under the $0.05 CPC reserve; B ($5) wins alone and pays the reserve.
    const ads = [
      { bid: 0.04, pCtr: 0.5, quality: 1 },
      { bid: 0.1, pCtr: 0.05, quality: 1 },
    ];
    expect(run(ads, { reserveMicros: [50_000, 0, 0] })).toEqual({ winners: [1], prices: [50_000] });
    expect(run(ads).winners).toEqual([0]);
  });
});

describe('auction rules', () => {
  it('prices CPM per thousand impressions and CPA per conversion', () => {
    const ads = [
      { bid: 10, pCtr: 0.02, quality: 1.0, type: BidType.Cpm }, // eCPM $10
      { bid: 0.2, pCtr: 0.04, quality: 1.0 }, // eCPM $8
    ];
    expect(run(ads)).toEqual({ winners: [0], prices: [8_010_000] });
    const cpa = [
      { bid: 20, pCtr: 0.05, pCvr: 0.1, quality: 1.0, type: BidType.Cpa },
      { bid: 0.5, pCtr: 0.1, quality: 1.0 },
    ];
    // CPA eCPM = 20 × 0.05 × 0.1 × 1000 = $100; runner-up $50 → 50 / 5 = $10 per conversion + ε.
    expect(run(cpa).prices).toEqual([10_010_000]);
  });

  it('drops ads under the floor or the reserve, and converts the floor into the winner unit', () => {
    const ads = [
      { bid: 1.0, pCtr: 0.05, quality: 1.0 },
      { bid: 1.0, pCtr: 0.01, quality: 1.0 },
    ];
    // eCPMs $50 and $10; a $20 floor removes the second and sets the first's price at 20 / 50 = $0.40 + ε.
    expect(run(ads, { floorCpmMicros: 20_000_000 })).toEqual({ winners: [0], prices: [410_000] });
    expect(run(ads, { floorCpmMicros: 60_000_000 }).winners).toEqual([]);
  });

  it('breaks ties toward the lower ad index', () => {
    expect(
      run([
        { bid: 1, pCtr: 0.05, quality: 1 },
        { bid: 1, pCtr: 0.05, quality: 1 },
      ]).winners,
    ).toEqual([0]);
  });

  it('first price charges the bid; second price is one-slot GSP', () => {
    const ads = [
      { bid: 2.0, pCtr: 0.05, quality: 1.2 },
      { bid: 1.8, pCtr: 0.04, quality: 1.1 },
    ];
    expect(run(ads, { mechanism: 'first_price', slots: 3 })).toEqual({ winners: [0], prices: [2_000_000] });
    expect(run(ads, { mechanism: 'second_price', slots: 3 })).toEqual({ winners: [0], prices: [1_330_000] });
  });

  it('holds its invariants on random auctions, and VCG never out-earns GSP', () => {
    const random = seededRandom(7);
    const theta = [1, 0.7, 0.5, 0.35];
    for (let round = 0; round < 500; round++) {
      const n = 1 + Math.floor(random() * 12);
      const ads: Ad[] = Array.from({ length: n }, () => ({
        bid: Math.round((0.05 + random() * 5) * 100) / 100,
        pCtr: 0.001 + random() * 0.1,
        pCvr: 0.01 + random() * 0.2,
        quality: 0.5 + random(),
        type: [BidType.Cpc, BidType.Cpm, BidType.Cpa][Math.floor(random() * 3)]!,
      }));
      const input = candidates(ads);
      const shared = {
        slots: 1 + Math.floor(random() * 4),
        reserveMicros: [50_000, 500_000, 1_000_000] as const,
        floorCpmMicros: Math.floor(random() * 5_000_000),
      };
      const gsp = runAuction(input, rules({ ...shared, incrementMicros: 0 }), auctionOutcome(8));
      const ecpm = (i: number): number => gsp.adjEcpmMicros[gsp.candidate.indexOf(i)]!;
      let gspRevenue = 0;
      for (let k = 0; k < gsp.winners; k++) {
        const i = gsp.candidate[k]!;
        expect(gsp.priceMicros[k]!).toBeLessThanOrEqual(input.bidMicros[i]!);
        expect(gsp.priceMicros[k]!).toBeGreaterThanOrEqual(shared.reserveMicros[input.bidType[i]!]!);
        expect(Number.isInteger(gsp.priceMicros[k]!)).toBe(true);
        if (k > 0) expect(ecpm(i)).toBeLessThanOrEqual(gsp.adjEcpmMicros[k - 1]!);
        // Expected spend per thousand impressions: slot effect x billable events x price.
        gspRevenue += theta[k]! * gsp.priceMicros[k]! * (gsp.adjEcpmMicros[k]! / input.bidMicros[i]!);
      }
      const vcg = runAuction(input, rules({ ...shared, incrementMicros: 0, mechanism: 'vcg', positionEffects: theta }), auctionOutcome(8));
      let vcgRevenue = 0;
      for (let k = 0; k < vcg.winners; k++) vcgRevenue += theta[k]! * vcg.priceMicros[k]! * (vcg.adjEcpmMicros[k]! / input.bidMicros[vcg.candidate[k]!]!);
      expect(vcg.winners).toBe(gsp.winners);
      expect(vcgRevenue).toBeLessThanOrEqual(gspRevenue * (1 + 1e-12));
    }
  });
});

describe('integrity and multi-objective ranking', () => {
  it('keeps ads under the minimum quality score out of the auction, whatever they bid', () => {
    const ads = candidates([
      { bid: 5.0, pCtr: 0.1, quality: 0.2 },
      { bid: 1.0, pCtr: 0.05, quality: 1.0 },
    ]);
    const open = runAuction(ads, rules(), auctionOutcome(1));
    expect(open.candidate[0]).toBe(0);
    const gated = runAuction(ads, rules({ minQuality: 0.5 }), auctionOutcome(1));
    expect(gated.winners).toBe(1);
    expect(gated.candidate[0]).toBe(1);
  });

  it('orders by the weighted objective, prices from adjusted eCPM, never above the bid nor below the reserve', () => {
    // A has the larger adjusted eCPM; B the larger pCTR.
    const ads = candidates([
      { bid: 4.0, pCtr: 0.02, quality: 1.0 }, // eCPM $80
      { bid: 1.0, pCtr: 0.06, quality: 1.0 }, // eCPM $60
      { bid: 0.5, pCtr: 0.03, quality: 1.0 }, // eCPM $15
    ]);
    const byValue = runAuction(ads, rules({ slots: 2 }), auctionOutcome(2));
    expect(Array.from(byValue.candidate)).toEqual([0, 1]);
    const byClicks = runAuction(ads, rules({ slots: 2, ranking: { ctr: 1, cvr: 0, value: 0 } }), auctionOutcome(2));
    expect(Array.from(byClicks.candidate)).toEqual([1, 2]);
    // B pays what ties the next ad in this order (C, $15 eCPM): 15 / (0.06 x 1000) = $0.25 + ε.
    expect(byClicks.priceMicros[0]).toBe(260_000);
    // C's next in order is A, whose eCPM ($80) would price C above its bid: clamped to the bid.
    expect(byClicks.priceMicros[1]).toBe(500_000);
    const reserved = runAuction(ads, rules({ slots: 1, reserveMicros: [400_000, 0, 0], ranking: { ctr: 1, cvr: 0, value: 0 } }), auctionOutcome(1));
    expect(reserved.candidate[0]).toBe(1);
    expect(reserved.priceMicros[0]).toBe(400_000);
  });
});

describe('partial selection of the winners', () => {
  it('picks the same winners, in the same order, as a full sort by adjusted eCPM with ties to the lower ad index', () => {
    const random = seededRandom(11);
    for (let round = 0; round < 300; round++) {
      const n = 1 + Math.floor(random() * 60);
      // Few distinct bids and rates, so that many candidates tie on adjusted eCPM.
      const ads: Ad[] = Array.from({ length: n }, () => ({
        bid: 1 + Math.floor(random() * 3),
        pCtr: [0.01, 0.02, 0.04][Math.floor(random() * 3)]!,
        quality: 1,
      }));
      const input = candidates(ads);
      // Ad indices out of position order, so the tiebreak is not the candidate order.
      input.tiebreak = Int32Array.from(ads, (_, i) => (i * 37) % 101);
      const slots = 1 + Math.floor(random() * 5);
      const out = runAuction(input, rules({ slots }), auctionOutcome(8));
      const ecpm = (i: number): number => input.bidMicros[i]! * input.pCtr[i]! * 1000;
      const sorted = Array.from(ads, (_, i) => i).sort((a, b) => ecpm(b) - ecpm(a) || input.tiebreak[a]! - input.tiebreak[b]!);
      expect(Array.from(out.candidate.subarray(0, out.winners))).toEqual(sorted.slice(0, Math.min(slots, n)));
      // GSP: each winner pays what ties the next in the full order (+ ε), capped at its bid.
      for (let k = 0; k < out.winners; k++) {
        const next = k + 1 < n ? ecpm(sorted[k + 1]!) : 0;
        const price = Math.min(Math.max(0, Math.ceil(next / (input.pCtr[sorted[k]!]! * 1000) - 1e-6)) + 10_000, input.bidMicros[sorted[k]!]!);
        expect(out.priceMicros[k]).toBe(price);
      }
    }
  });
});
