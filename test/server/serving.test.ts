import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { readCatalogFile } from '../../src/catalog/catalog_file';
import { signingKeyOf, verifyEventToken } from '../../src/money/event_token';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { Builder } from 'flatbuffers';
import { AdRequest, Placement, ResponseStatus } from '../../src/protocol/schema';
import { postAd } from '../helpers/requests';
import { readModelDir } from '../../src/engine/model_dir';
import { tinyModelDir } from '../setup/tiny_model';

const tokenKey = 'test-event-token-key-0123456789abcdef';
const signingKey = signingKeyOf(Buffer.from(tokenKey));
let daemon: Daemon;

beforeAll(async () => {
  daemon = await startDaemon({
    ADSERVE_MODEL_DIR: tinyModelDir,
    ADSERVE_EVENT_TOKEN_KEY: tokenKey,
    ADSERVE_INDEX_KIND: 'ivf',
    ADSERVE_SCORE_CANDIDATES: '100',
    // Room for the degraded-answer test's 116 requests at once (the default admits 64).
    ADSERVE_MAX_CONCURRENT_DECISIONS: '256',
  });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

async function decide(bytes: Uint8Array) {
  const response = await postAd(daemon.url, bytes);
  expect(response.status).toBe(200);
  return decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
}

function blockedRequest(advertisers: string[]): Uint8Array {
  const builder = new Builder(256);
  const id = builder.createString('blocked-1');
  const query = builder.createString('running shoes');
  const blocked = AdRequest.createBlockedAdvertisersVector(
    builder,
    advertisers.map((a) => builder.createString(a)),
  );
  AdRequest.startAdRequest(builder);
  AdRequest.addId(builder, id);
  AdRequest.addPlacement(builder, Placement.Search);
  AdRequest.addQuery(builder, query);
  AdRequest.addSlots(builder, 3);
  AdRequest.addBlockedAdvertisers(builder, blocked);
  AdRequest.finishAdRequestBuffer(builder, AdRequest.endAdRequest(builder));
  return builder.asUint8Array();
}

describe('serving the tiny model', () => {
  it('is ready', async () => {
    expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);
  });

  it('runs the auction and answers winners with prices, rates and signed tokens', async () => {
    const ad = await decide(encodeAdRequest({ id: 'r-1', query: 'running shoes', slots: 3, debug: true }));
    expect(ad.status()).toBe(ResponseStatus.Ok);
    expect(ad.requestId()).toBe('r-1');
    expect(ad.modelVersion()).toMatch(/^tiny-/);
    expect(ad.adsLength()).toBe(3);
    let previousEcpm = Infinity;
    for (let slot = 0; slot < 3; slot++) {
      const winner = ad.ads(slot)!;
      expect(winner.slot()).toBe(slot);
      expect(winner.adId()).toMatch(/^ad\d+$/);
      expect(winner.creative()!.title()!.length).toBeGreaterThan(0);
      expect(winner.priceMicros()).toBeLessThanOrEqual(winner.bidMicros());
      expect(winner.priceMicros()).toBeGreaterThan(0n);
      expect(winner.pctr()).toBeGreaterThan(0);
      expect(winner.pctr()).toBeLessThan(1);
      expect(Number(winner.ecpmMicros())).toBeLessThanOrEqual(previousEcpm);
      previousEcpm = Number(winner.ecpmMicros());
      const token = verifyEventToken(winner.eventToken()!, [signingKey], Date.now());
      expect(token).toMatchObject({ requestId: 'r-1', adId: winner.adId(), slot, priceMicros: Number(winner.priceMicros()) });
      // Flip a whole character early in the sealed body.
      const parts = winner.eventToken()!.split('.');
      parts[2] = (parts[2]![0] === 'A' ? 'B' : 'A') + parts[2]!.slice(1);
      expect(() => verifyEventToken(parts.join('.'), [signingKey], Date.now())).toThrow(/signature/);
    }
    const stages = Array.from({ length: ad.timingsLength() }, (_, i) => ad.timings(i)!.stage());
    expect(stages).toEqual(['parse', 'exclusions', 'user', 'context', 'retrieve', 'light_score', 'score', 'calibrate', 'quality', 'auction', 'encode']);
  });

  it('honours the blocked-advertiser list', async () => {
    const first = await decide(encodeAdRequest({ id: 'x', query: 'running shoes', slots: 3 }));
    const winners = Array.from({ length: first.adsLength() }, (_, i) => first.ads(i)!.advertiserId()!);
    const again = await decide(blockedRequest(winners));
    for (let i = 0; i < again.adsLength(); i++) expect(winners).not.toContain(again.ads(i)!.advertiserId());
  });

  it('never serves a targeted ad to a request its rules exclude', async () => {
    // A homepage request from an unlisted country has no query, category or matching geo, so only
    // untargeted ads (or ads with nothing but negative keywords) may win; about 30 % of the
    // catalog is targeted, so ignoring targeting would show here.
    const targeted = new Set(
      readCatalogFile(readModelDir(tinyModelDir).seedCatalog!.file)
        .ads.filter((ad) => (ad.targeting ?? []).some((rule) => rule.some((c) => !c.not)))
        .map((ad) => ad.id),
    );
    expect(targeted.size).toBeGreaterThan(50);
    let served = 0;
    for (let i = 0; i < 20; i++) {
      const ad = await decide(encodeAdRequest({ id: `t-${i}`, placement: Placement.Homepage, country: 'XX', userId: `u${i}`, slots: 10 }));
      for (let slot = 0; slot < ad.adsLength(); slot++, served++) expect(targeted.has(ad.ads(slot)!.adId()!)).toBe(false);
    }
    expect(served).toBeGreaterThan(100);
  });

  it('returns NoFill when the floor is above every ad', async () => {
    const ad = await decide(encodeAdRequest({ floorCpmMicros: 10n ** 12n }));
    expect(ad.status()).toBe(ResponseStatus.NoFill);
    expect(ad.adsLength()).toBe(0);
  });

  it('answers degraded, never late, when tmax is too short for model scoring', async () => {
    // Requests with 1 ms of budget sent behind three full batches (maxBatch 32) of ordinary ones:
    // queued behind those, their deadline passes before their batch reaches the model. (Alone they
    // would not wait: in sparse traffic the batcher sends a request on at once.)
    const ahead = Array.from({ length: 96 }, (_, i) => decide(encodeAdRequest({ id: `a-${i}`, query: 'dog food' })));
    const short = Array.from({ length: 20 }, (_, i) => decide(encodeAdRequest({ id: `d-${i}`, query: 'tv', tmaxMs: 1, placement: Placement.Search })));
    const answers = await Promise.all([...ahead, ...short]);
    expect(answers.slice(ahead.length).filter((ad) => ad.degraded()).length).toBeGreaterThan(0);
  });

  it('exports engine and auction metrics', async () => {
    const text = await (await fetch(`${daemon.url}/metrics`)).text();
    for (const stage of ['retrieve', 'score', 'exclusions', 'calibrate', 'quality', 'auction', 'encode'])
      expect(text).toMatch(new RegExp(`adserve_stage_duration_seconds_count\\{stage="${stage}"\\} [1-9]`));
    expect(text).toMatch(/adserve_batch_size_count [1-9]/);
    expect(text).toMatch(/adserve_auction_clearing_price_count\{bid_type="(cpc|cpm|cpa)"\} [1-9]/);
    expect(text).toMatch(/adserve_deadline_degraded_total [1-9]/);
    expect(text).toMatch(/adserve_engine_cache_hits_total\{cache="context"\} [1-9]/);
    expect(text).toMatch(/adserve_engine_queue_depth 0/);
  });
});

describe('overload', () => {
  it('sheds with 503 and Retry-After once the engine queue is full, and admitted requests still succeed', async () => {
    const small = await startDaemon({ ADSERVE_MODEL_DIR: tinyModelDir, ADSERVE_QUEUE_CAPACITY: '2', ADSERVE_MAX_BATCH: '1' });
    try {
      const responses = await Promise.all(Array.from({ length: 60 }, (_, i) => postAd(small.url, encodeAdRequest({ id: `o-${i}`, query: 'dog food' }))));
      const statuses = responses.map((r) => r.status);
      expect(statuses).toContain(503);
      expect(statuses).toContain(200);
      expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
      const shed = responses.find((r) => r.status === 503)!;
      expect(shed.headers.get('retry-after')).toBe('1');
      expect(((await shed.json()) as { error: { message: string } }).error.message).toMatch(/queue is full/);
    } finally {
      await small.stop();
    }
  });
});
