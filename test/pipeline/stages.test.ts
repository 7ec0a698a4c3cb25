// The stages after the engine, each run on a real engine result of the tiny model with explicit
// scratch space and clock: calibrate, quality, auction and encode.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runAuction, auctionOutcome } from '../../src/auction/auction';
import { calibrate } from '../../src/calibration/calibrate';
import { type Catalog, catalogFromJson } from '../../src/catalog/catalog';
import { defaults } from '../../src/config';
import type { NativeEngine, ScoreResult } from '../../src/engine/addon';
import { type AdHistory, adHistory, openEngine } from '../../src/engine/engine';
import { type ModelDir, readModelDir } from '../../src/engine/model_dir';
import { engineSettings, placementRules } from '../../src/engine/serving';
import { signingKeyOf, verifyEventToken } from '../../src/money/event_token';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { Placement, ResponseStatus } from '../../src/protocol/schema';
import { auctionCandidates } from '../../src/pipeline/auction';
import { calibrateCandidates } from '../../src/pipeline/calibrate_candidates';
import type { Clock } from '../../src/pipeline/clock';
import { encodeDecision } from '../../src/pipeline/encode';
import { parseAdRequest } from '../../src/pipeline/parse_request';
import { scoreQuality } from '../../src/pipeline/quality';
import { DecisionScratch } from '../../src/pipeline/scratch';
import { tinyModelDir } from '../setup/tiny_model';

let model: ModelDir;
let catalog: Catalog;
let history: AdHistory;
let engine: NativeEngine;
let result: ScoreResult;
const body = encodeAdRequest({ id: 'stages-1', query: 'running shoes', slots: 3, debug: true });
const rules = placementRules(defaults);

beforeAll(async () => {
  model = readModelDir(tinyModelDir);
  catalog = catalogFromJson(model.catalog);
  history = adHistory(model);
  engine = await openEngine(model, catalog, history, { ...engineSettings(defaults), index: { kind: 'flat' } });
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
});

describe('auction stage', () => {
  it("runs the placement's rules with the request's slots over the candidates' columns", () => {
    const scratch = throughAuction(result);
    const outcome = scratch.outcome;
    expect(outcome.winners).toBe(3);
    const expected = runAuction(
      { count: result.adIndex.length, bidType: scratch.bidType, bidMicros: scratch.bidMicros, pCtr: scratch.pCtr, pCvr: scratch.pCvr, quality: scratch.quality, tiebreak: scratch.adIndex },
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
      { parsed: parseAdRequest(body, defaults), catalog, modelVersion: 'm-1', outcome: scratch.outcome, degraded: false, engineStageNs: result.stageNs, signingKey: key, tokenTtlMs: 60_000, stageMs: { parse: 1, exclusions: 2, calibrate: 3, quality: 4, auction: 5 }, startedMs: 40 },
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
    expect(stages.map((timing) => timing.stage())).toEqual(['parse', 'exclusions', 'user', 'context', 'retrieve', 'light_score', 'score', 'calibrate', 'quality', 'auction', 'encode']);
    const nanos = Object.fromEntries(stages.map((timing) => [timing.stage(), timing.nanos()]));
    expect(nanos).toMatchObject({ parse: 1_000_000n, exclusions: 2_000_000n, calibrate: 3_000_000n, quality: 4_000_000n, auction: 5_000_000n, score: BigInt(Math.round(result.stageNs[5]!)) });
    // The encode stage's own time comes from the monotonic clock given (42 - 40 ms).
    expect(nanos.encode).toBe(2_000_000n);
  });
});
