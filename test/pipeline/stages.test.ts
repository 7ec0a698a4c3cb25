// The stages after the engine, each run on a real engine result of the tiny model with explicit
// scratch space and clock: calibrate, quality, auction and encode.
import { Builder } from 'flatbuffers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runAuction, auctionOutcome } from '../../src/auction/auction';
import { insertKeyword } from '../../src/auction/keyword_insertion';
import { defaultQualityWeights } from '../../src/auction/quality';
import { calibrate } from '../../src/calibration/calibrate';
import { type Catalog, catalogFromJson } from '../../src/catalog/catalog';
import { readCatalogFile } from '../../src/catalog/catalog_file';
import type { CatalogJson } from '../../src/catalog/catalog_json';
import { defaults } from '../../src/config';
import type { NativeEngine, ScoreResult } from '../../src/engine/addon';
import { type AdHistory, adHistory, openEngine } from '../../src/engine/engine';
import { catalogFromFile, type ServingCatalog } from '../../src/engine/model_catalog';
import { type ModelDir, readModelDir } from '../../src/engine/model_dir';
import { engineSettings, placementRules } from '../../src/engine/serving';
import { signingKeyOf, verifyEventToken } from '../../src/money/event_token';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { Ad, AdResponse, BidType, Creative, NoFillReason, Placement, ResponseStatus, StageTiming } from '../../src/protocol/schema';
import { auctionCandidates } from '../../src/pipeline/auction';
import { calibrateCandidates } from '../../src/pipeline/calibrate_candidates';
import type { Clock } from '../../src/pipeline/clock';
import { encodeDecision } from '../../src/pipeline/encode';
import { type ParsedAdRequest, parseAdRequest } from '../../src/pipeline/parse_request';
import { scoreQuality } from '../../src/pipeline/quality';
import { DecisionScratch } from '../../src/pipeline/scratch';
import { tinyModelDir } from '../setup/tiny_model';

let model: ModelDir;
let catalog: Catalog;
let modelCatalog: ServingCatalog;
let history: AdHistory;
let engine: NativeEngine;
let result: ScoreResult;
const body = encodeAdRequest({ id: 'stages-1', query: 'running shoes', slots: 3, debug: true });
const rules = placementRules(defaults);
type CatalogAd = CatalogJson['ads'][number];

beforeAll(async () => {
  model = readModelDir(tinyModelDir);
  modelCatalog = catalogFromFile(model);
  catalog = modelCatalog.catalog;
  history = adHistory(model);
  engine = await openEngine(model, modelCatalog, history, { ...engineSettings(defaults), index: { kind: 'flat' } });
  result = await engine.score(body, 5000);
  expect(result.adIndex.length).toBeGreaterThan(3);
});
afterAll(() => engine.close());

/** Scratch after the calibrate, quality and auction stages on `scored`. */
function throughAuction(scored: ScoreResult): DecisionScratch {
  const scratch = new DecisionScratch();
  scratch.ensure(scored.adIndex.length, 3);
  calibrateCandidates(scored, model.manifest.calibration, history, scratch);
  scoreQuality(scored, catalog, scratch);
  auctionCandidates(parseAdRequest(body, defaults), rules, catalog, scored.adIndex.length, scratch);
  return scratch;
}

describe('calibrate stage', () => {
  it("gives each candidate its calibration map's value, and the ad's historical rates when degraded", () => {
    const scratch = throughAuction(result);
    for (let i = 0; i < result.adIndex.length; i++) {
      expect(scratch.adIndex[i]).toBe(result.adIndex[i]);
      expect(scratch.pCtr[i]).toBe(calibrate(model.manifest.calibration.ctr, result.ctrLogit[i]!));
      expect(scratch.pCvr[i]).toBe(calibrate(model.manifest.calibration.cvr, result.cvrLogit[i]!));
    }
    const degraded = throughAuction({ ...result, degraded: true });
    for (let i = 0; i < result.adIndex.length; i++) expect(degraded.pCtr[i]).toBe(history.ctr[result.adIndex[i]!]);
  });
});

describe('quality stage', () => {
  it('scores each candidate from its bid type, relevance and landing quality, within [0.5, 1.5]', () => {
    const scratch = throughAuction(result);
    const count = result.adIndex.length;
    for (let i = 0; i < count; i++) {
      expect(scratch.bidType[i]).toBe(catalog.bidType[result.adIndex[i]!]);
      expect(scratch.landing[i]).toBe(catalog.landingQuality[result.adIndex[i]!]);
      expect(scratch.quality[i]).toBeGreaterThanOrEqual(0.5);
      expect(scratch.quality[i]).toBeLessThanOrEqual(1.5);
    }
    // Not all clamped: the score follows the candidates.
    expect(new Set(Array.from(scratch.quality.subarray(0, count))).size).toBeGreaterThan(2);
  });

  it('gives bit for bit the log-domain score with every log taken afresh, on first sight of the ads and after', () => {
    const scratch = throughAuction(result);
    const count = result.adIndex.length;
    const { alpha, beta, gamma, delta } = defaultQualityWeights;
    const mean = (values: ArrayLike<number>): number => {
      let sum = 0;
      for (let i = 0; i < count; i++) sum += values[i]!;
      return sum > 0 ? sum / count : 1;
    };
    const landing = Float64Array.from(result.adIndex, (ad) => catalog.landingQuality[ad]!);
    const shared = beta * Math.log(mean(scratch.relevance)) + gamma * Math.log(mean(landing));
    const offsets = [shared + alpha * Math.log(mean(scratch.pCvr)), shared + delta * Math.log(mean(scratch.pCtr)), shared];
    const expected = Array.from(result.adIndex, (ad, i) => {
      const type = catalog.bidType[ad]!;
      let logQs = beta * Math.log(scratch.relevance[i]!) + gamma * Math.log(landing[i]!);
      if (type === BidType.Cpc) logQs += alpha * Math.log(scratch.pCvr[i]!) - offsets[0]!;
      else if (type === BidType.Cpm) logQs += delta * Math.log(scratch.pCtr[i]!) - offsets[1]!;
      else logQs -= offsets[2]!;
      return Math.min(1.5, Math.max(0.5, Math.exp(logQs)));
    });
    expect(Array.from(scratch.quality.subarray(0, count))).toEqual(expected);
    scoreQuality(result, catalog, scratch);
    expect(Array.from(scratch.quality.subarray(0, count))).toEqual(expected);
  });
});

describe('auction stage', () => {
  it("runs the placement's rules with the request's slots over the candidates' columns", () => {
    const scratch = throughAuction(result);
    const outcome = scratch.outcome;
    expect(outcome.winners).toBe(3);
    const expected = runAuction(
      {
        count: result.adIndex.length,
        bidType: scratch.bidType,
        bidMicros: scratch.bidMicros,
        pCtr: scratch.pCtr,
        pCvr: scratch.pCvr,
        quality: scratch.quality,
        tiebreak: scratch.adIndex,
      },
      { ...rules[Placement.Search]!, slots: 3 },
      auctionOutcome(3),
    );
    expect(Array.from(outcome.candidate.subarray(0, 3))).toEqual(Array.from(expected.candidate));
    expect(Array.from(outcome.priceMicros.subarray(0, 3))).toEqual(Array.from(expected.priceMicros));
    for (let i = 0; i < result.adIndex.length; i++) expect(scratch.bidMicros[i]).toBe(catalog.bidMicros[result.adIndex[i]!]);
  });
});

describe('encode stage', () => {
  it('answers the winners with tokens stamped by the clock given, and debug timings in request order', () => {
    const scratch = throughAuction(result);
    const issuedMs = Date.UTC(2026, 0, 15, 6);
    const clock: Clock = { now: () => issuedMs, monotonic: () => 42 };
    const key = signingKeyOf(Buffer.from('stages-test-key'));
    const bytes = encodeDecision(
      {
        parsed: parseAdRequest(body, defaults),
        catalog,
        modelVersion: 'm-1',
        outcome: scratch.outcome,
        degraded: false,
        noFillReason: NoFillReason.None,
        currency: 'USD',
        engineStageNs: result.stageNs,
        signingKey: key,
        issuedMs: clock.now(),
        tokenTtlMs: 60_000,
        stageMs: { parse: 1, exclusions: 2, calibrate: 3, quality: 4, auction: 5 },
        startedMs: 40,
      },
      clock,
      scratch,
    );
    const response = decodeAdResponse(bytes);
    expect(response.status()).toBe(ResponseStatus.Ok);
    expect(response.adsLength()).toBe(3);
    for (let slot = 0; slot < 3; slot++) {
      const ad = response.ads(slot)!;
      const winner = scratch.outcome.candidate[slot]!;
      expect(ad.adId()).toBe(catalog.adId.at(scratch.adIndex[winner]!));
      expect(Number(ad.priceMicros())).toBe(scratch.outcome.priceMicros[slot]);
      const token = verifyEventToken(ad.eventToken()!, [key], issuedMs);
      expect(token).toMatchObject({ requestId: 'stages-1', slot, issuedMs, expiresMs: issuedMs + 60_000, modelVersion: 'm-1' });
      expect(() => verifyEventToken(ad.eventToken()!, [key], issuedMs + 60_001)).toThrow(/expired/);
    }
    const stages = Array.from({ length: response.timingsLength() }, (_, i) => response.timings(i)!);
    expect(stages.map((timing) => timing.stage())).toEqual([
      'parse',
      'exclusions',
      'user',
      'context',
      'retrieve',
      'light_score',
      'score',
      'calibrate',
      'quality',
      'auction',
      'encode',
    ]);
    const nanos = Object.fromEntries(stages.map((timing) => [timing.stage(), timing.nanos()]));
    expect(nanos).toMatchObject({
      parse: 1_000_000n,
      exclusions: 2_000_000n,
      calibrate: 3_000_000n,
      quality: 4_000_000n,
      auction: 5_000_000n,
      score: BigInt(Math.round(result.stageNs[5]!)),
    });
    // The encode stage's own time comes from the monotonic clock given (42 - 40 ms).
    expect(nanos.encode).toBe(2_000_000n);
  });
});

/**
 * The AdResponse of a decision, built the plain way: every field from a JS string through the
 * FlatBuffers builder, in the order the encode stage has always written them. `tokens` are the
 * encoded answer's own (their sealing is pinned in test/money/event_token.test.ts).
 */
function plainResponse(parsed: ParsedAdRequest, shown: Catalog, scratch: DecisionScratch, tokens: string[], timings: Array<[string, bigint]>): Uint8Array {
  const builder = new Builder(1024);
  const { outcome } = scratch;
  const query = parsed.placement === Placement.Search ? (parsed.request.query() ?? undefined) : undefined;
  const requestId = builder.createString(parsed.requestId);
  const modelVersion = builder.createString('m-1');
  const currency = builder.createString('USD');
  const ads: number[] = [];
  for (let slot = 0; slot < outcome.winners; slot++) {
    const i = outcome.candidate[slot]!;
    const ad = scratch.adIndex[i]!;
    const creative = Creative.createCreative(
      builder,
      builder.createString(insertKeyword(shown.title.at(ad)!, query)),
      0,
      builder.createString(shown.imageUrl.at(ad)!),
      builder.createString(shown.landingUrl.at(ad)!),
    );
    const strings = [shown.adId.at(ad)!, shown.campaignId[ad]!, shown.advertiserId[ad]!, shown.productId.at(ad)!, tokens[slot]!].map((text) =>
      builder.createString(text),
    );
    Ad.startAd(builder);
    Ad.addSlot(builder, slot);
    Ad.addAdId(builder, strings[0]!);
    Ad.addCampaignId(builder, strings[1]!);
    Ad.addAdvertiserId(builder, strings[2]!);
    Ad.addProductId(builder, strings[3]!);
    Ad.addCreative(builder, creative);
    Ad.addBidType(builder, scratch.bidType[i]!);
    Ad.addBidMicros(builder, BigInt(scratch.bidMicros[i]!));
    Ad.addPriceMicros(builder, BigInt(outcome.priceMicros[slot]!));
    Ad.addPctr(builder, scratch.pCtr[i]!);
    Ad.addPcvr(builder, scratch.pCvr[i]!);
    Ad.addEcpmMicros(builder, BigInt(Math.round(outcome.adjEcpmMicros[slot]!)));
    Ad.addQuality(builder, scratch.quality[i]!);
    Ad.addEventToken(builder, strings[4]!);
    ads.push(Ad.endAd(builder));
  }
  const adsVector = AdResponse.createAdsVector(builder, ads);
  const timingsVector = AdResponse.createTimingsVector(
    builder,
    timings.map(([stage, nanos]) => StageTiming.createStageTiming(builder, builder.createString(stage), nanos)),
  );
  AdResponse.finishAdResponseBuffer(
    builder,
    AdResponse.createAdResponse(builder, requestId, ResponseStatus.Ok, 0, adsVector, false, modelVersion, timingsVector, 0, currency, NoFillReason.None),
  );
  return builder.asUint8Array().slice();
}

describe('encode stage bytes', () => {
  it('writes exactly the bytes of the plain encoder, for ASCII and non-ASCII text and titles with a keyword placeholder', () => {
    const scratch = throughAuction(result);
    const clock: Clock = { now: () => Date.UTC(2026, 0, 15, 6), monotonic: () => 42 };
    const key = signingKeyOf(Buffer.from('stages-test-key'));
    const texts = [
      (ad: CatalogAd) => ad,
      (ad: CatalogAd) => ({
        ...ad,
        id: `${ad.id}-é`,
        advertiser_id: `${ad.advertiser_id}-ü`,
        product_id: `${ad.product_id}-日本`,
        title: `Café ☕ ${ad.title}`,
        landing_url: `${ad.landing_url}?q=crème`,
        image_url: `${ad.image_url}#ß`,
      }),
      (ad: CatalogAd) => ({ ...ad, title: `{KeyWord:${ad.title}} on Sale` }),
      (ad: CatalogAd) => ({ ...ad, title: `{keyword:Schuhe} für {KEYWORD:dich}` }),
    ];
    const requests = [
      { id: 'stages-1', query: 'running shoes', slots: 3, debug: true },
      { id: 'stages-ü-☕', query: 'laufschuhe größe 44', userId: 'nutzer-ö', slots: 3, debug: true },
    ];
    for (const text of texts) {
      const seed = readCatalogFile(model.seedCatalog!.file);
      const shown = catalogFromJson({ ...seed, ads: seed.ads.map(text) });
      for (const request of requests) {
        const parsed = parseAdRequest(encodeAdRequest(request), defaults);
        const bytes = encodeDecision(
          {
            parsed,
            catalog: shown,
            modelVersion: 'm-1',
            outcome: scratch.outcome,
            degraded: false,
            noFillReason: NoFillReason.None,
            currency: 'USD',
            engineStageNs: result.stageNs,
            signingKey: key,
            issuedMs: clock.now(),
            tokenTtlMs: 60_000,
            stageMs: { parse: 1, exclusions: 2, calibrate: 3, quality: 4, auction: 5 },
            startedMs: 40,
          },
          clock,
          scratch,
        );
        const response = decodeAdResponse(bytes);
        expect(response.adsLength()).toBe(3);
        const tokens = Array.from({ length: 3 }, (_, slot) => response.ads(slot)!.eventToken()!);
        const timings = Array.from({ length: response.timingsLength() }, (_, i): [string, bigint] => [
          response.timings(i)!.stage()!,
          response.timings(i)!.nanos(),
        ]);
        expect(timings[0]).toEqual(['parse', 1_000_000n]);
        expect(Buffer.from(bytes).equals(plainResponse(parsed, shown, scratch, tokens, timings))).toBe(true);
        for (let slot = 0; slot < 3; slot++) {
          const i = scratch.outcome.candidate[slot]!;
          const ad = scratch.adIndex[i]!;
          expect(verifyEventToken(tokens[slot]!, [key], clock.now())).toEqual({
            requestId: request.id,
            adId: shown.adId.at(ad),
            slot,
            bidType: scratch.bidType[i],
            priceMicros: scratch.outcome.priceMicros[slot],
            issuedMs: clock.now(),
            expiresMs: clock.now() + 60_000,
            userId: request.userId ?? '',
            pCtr: Math.round(scratch.pCtr[i]! * 1e6) / 1e6,
            pCvr: Math.round(scratch.pCvr[i]! * 1e6) / 1e6,
            placement: 'Search',
            modelVersion: 'm-1',
          });
        }
      }
    }
  });
});
