// The whole decision with the real engine of the tiny model and explicit time, chance and scratch.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CatalogChanges } from '../../src/catalog/catalog_changes';
import { defaults } from '../../src/config';
import { addon } from '../../src/engine/addon';
import { readModelDir } from '../../src/engine/model_dir';
import { openServing, type Serving } from '../../src/engine/serving';
import { createMetrics } from '../../src/metrics';
import { signingKeyOf, verifyEventToken } from '../../src/money/event_token';
import { Ledger } from '../../src/money/ledger';
import { Money } from '../../src/money/money';
import { LocalSpendStore } from '../../src/money/spend_store';
import { type DecisionContext, decideAds } from '../../src/pipeline/ad_decision';
import type { Clock } from '../../src/pipeline/clock';
import { DecisionScratch } from '../../src/pipeline/scratch';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ResponseStatus } from '../../src/protocol/schema';
import { tinyModelDir } from '../setup/tiny_model';

const nowMs = Date.UTC(2026, 0, 15, 6);
const key = signingKeyOf(Buffer.from('decision-test-key'));
let serving: Serving;
let context: DecisionContext;

beforeAll(async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-decision-'));
  const spend = new LocalSpendStore(
    await Ledger.open(dataDir, { snapshotEvents: 100_000, eventRetentionMs: 2 * 3_600_000, reportRetentionHours: 24 }),
    3_600_000,
  );
  serving = await openServing(readModelDir(tinyModelDir), { ...defaults, indexKind: 'flat' }, new Money(spend), CatalogChanges.open(dataDir));
  // Every monotonic reading is 1 ms after the last, so each stage of ours takes exactly 1 ms.
  let tick = 0;
  const clock: Clock = { now: () => nowMs, monotonic: () => tick++ };
  context = {
    config: defaults,
    serving,
    signingKey: key,
    metrics: createMetrics(addon.buildInfo(), 'test'),
    clock,
    random: () => 0.5,
    scratch: new DecisionScratch(),
  };
});
afterAll(() => serving.engine.close());

describe('decideAds', () => {
  it('stamps tokens with the clock given and times each stage by its monotonic readings', async () => {
    const decision = await decideAds(encodeAdRequest({ id: 'd-1', query: 'running shoes', slots: 2, debug: true }), context);
    const response = decodeAdResponse(decision.response);
    expect(response.status()).toBe(ResponseStatus.Ok);
    expect(decision.winners).toBe(2);
    for (let slot = 0; slot < 2; slot++) {
      const fields = verifyEventToken(response.ads(slot)!.eventToken()!, [key], nowMs);
      expect(fields).toMatchObject({ requestId: 'd-1', slot, issuedMs: nowMs, expiresMs: nowMs + defaults.eventTokenTtlSeconds * 1000 });
    }
    const timings = Object.fromEntries(
      Array.from({ length: response.timingsLength() }, (_, i) => [response.timings(i)!.stage(), response.timings(i)!.nanos()]),
    );
    // Exclusions spans one more reading: the time budget left for the history read.
    expect(timings).toMatchObject({
      parse: 1_000_000n,
      exclusions: 2_000_000n,
      calibrate: 1_000_000n,
      quality: 1_000_000n,
      auction: 1_000_000n,
      encode: 1_000_000n,
    });
    const scraped = await context.metrics.registry.metrics();
    for (const stage of ['score', 'exclusions', 'calibrate', 'quality', 'auction', 'encode']) {
      expect(scraped).toMatch(new RegExp(`adserve_stage_duration_seconds_count\\{stage="${stage}"\\} 1\\n`));
    }
    expect(scraped).toMatch(/adserve_stage_duration_seconds_sum\{stage="calibrate"\} 0\.001\n/);
  });

  it('answers NoEngine without a model, and gives two interleaved decisions their own answers', async () => {
    const none = decodeAdResponse((await decideAds(encodeAdRequest({ id: 'd-2' }), { ...context, serving: undefined })).response);
    expect(none.status()).toBe(ResponseStatus.NoEngine);
    const [a, b] = await Promise.all([
      decideAds(encodeAdRequest({ id: 'd-a', query: 'running shoes', slots: 1 }), context),
      decideAds(encodeAdRequest({ id: 'd-b', query: 'usb cable', slots: 3 }), context),
    ]);
    expect([decodeAdResponse(a.response).requestId(), decodeAdResponse(a.response).adsLength()]).toEqual(['d-a', 1]);
    expect([decodeAdResponse(b.response).requestId(), decodeAdResponse(b.response).adsLength()]).toEqual(['d-b', 3]);
  });
});
