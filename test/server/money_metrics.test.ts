// The money and model metrics of a real daemon: spend by bid type equals what the events were
// charged, every event outcome is counted once, exhausted campaigns, ledger commits and the serving
// model are exported; with Redis stopped under a running daemon, its failed commands are counted.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import type { Manifest } from '../../src/engine/model_dir';
import { BidType } from '../../src/protocol/schema';
import { baseEnv, billable, send, serve, spend, tinyModelWithCampaigns } from '../helpers/events';
import { sample, scrapeMetrics } from '../helpers/metrics';
import { type RedisServer, startRedis } from '../helpers/redis';

const bidTypeLabel = { [BidType.Cpc]: 'cpc', [BidType.Cpm]: 'cpm', [BidType.Cpa]: 'cpa' } as const;

describe('money and model metrics', () => {
  let daemon: Daemon;
  let modelDir: string;
  beforeAll(async () => {
    // CPC campaigns may spend 1,000 micros in all, less than any click, so a charged click exhausts its
    // campaign; one CPM campaign bids high enough to win some slots (the tiny model's own CPM bids never do).
    let raisedCpm = false;
    modelDir = tinyModelWithCampaigns((campaign) => {
      if (campaign.bid_type === 'CPC') campaign.lifetime_budget_micros = 1000;
      if (campaign.bid_type === 'CPM' && !raisedCpm) [campaign.bid_micros, raisedCpm] = [200_000_000, true];
    });
    daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: modelDir });
  });
  afterAll(async () => {
    await daemon.stop();
  });

  it('counts spend by bid type as charged, each event outcome, exhausted campaigns and ledger commits', async () => {
    const served = await serve(daemon.url, 200, 'money-metrics', 'yoga mat');
    const ads = [BidType.Cpc, BidType.Cpm, BidType.Cpa].map((bidType) => served.find((s) => s.bidType === bidType)!);
    expect(ads.every((ad) => ad !== undefined)).toBe(true);
    const charged = { cpc: 0, cpm: 0, cpa: 0 };
    let recorded = 0;
    for (const [i, ad] of ads.entries()) {
      for (const type of ['impression', 'click', 'conversion'] as const) {
        const response = await send(daemon.url, { event_id: `mm-${i}-${type}`, type, token: ad.token });
        expect(response.status).toBe(200);
        recorded++;
        const { chargedMicros } = (await response.json()) as { chargedMicros: number };
        if (billable[ad.bidType] === type) charged[bidTypeLabel[ad.bidType]] += chargedMicros;
      }
    }
    expect(charged.cpc).toBe(1000);
    expect(charged.cpm).toBeGreaterThan(0);
    // Refusals, each of a known type: a replayed id, the same ad's impression again, a click before
    // any impression, a token that does not verify, an empty event id.
    const fresh = served.find((s) => !ads.includes(s))!;
    const refusals: Array<[object, number]> = [
      [{ event_id: 'mm-0-impression', type: 'impression', token: ads[0]!.token }, 409],
      [{ event_id: 'mm-again', type: 'impression', token: ads[0]!.token }, 409],
      [{ event_id: 'mm-early-click', type: 'click', token: fresh.token }, 422],
      [{ event_id: 'mm-forged', type: 'click', token: 'v1.nope' }, 422],
      [{ event_id: '', type: 'conversion', token: fresh.token }, 422],
    ];
    for (const [event, status] of refusals) expect((await send(daemon.url, event)).status).toBe(status);

    const samples = await scrapeMetrics(daemon.url);
    for (const bidType of ['cpc', 'cpm', 'cpa'] as const)
      expect(sample(samples, 'adserve_spend_micros_total', { bid_type: bidType })).toBeCloseTo(charged[bidType], 9);
    const events = (type: string, outcome: string): number | undefined => sample(samples, 'adserve_events_total', { type, outcome });
    for (const type of ['impression', 'click', 'conversion']) expect(events(type, 'recorded')).toBe(3);
    expect(events('impression', 'duplicate')).toBe(2);
    expect(events('click', 'out_of_order')).toBe(1);
    expect(events('click', 'invalid_token')).toBe(1);
    expect(events('conversion', 'invalid_event')).toBe(1);
    const report = await spend(daemon.url);
    const exhausted = Object.values(report.campaigns).filter((campaign) => campaign.exhausted).length;
    expect(exhausted).toBeGreaterThan(0);
    expect(sample(samples, 'adserve_budget_exhausted_campaigns')).toBe(exhausted);
    // Group commit: at least one fsync, at most one per recorded event.
    const commits = sample(samples, 'adserve_ledger_fsync_duration_seconds_count')!;
    expect(commits).toBeGreaterThan(0);
    expect(commits).toBeLessThanOrEqual(recorded);
    expect(sample(samples, 'adserve_ledger_fsync_duration_seconds_sum')).toBeGreaterThan(0);
  });

  it('exports the serving model with its version and model.pt hash', async () => {
    const manifest = JSON.parse(readFileSync(path.join(modelDir, 'manifest.json'), 'utf8')) as Manifest;
    const samples = await scrapeMetrics(daemon.url);
    expect(sample(samples, 'adserve_model_info', { arm: 'a', version: manifest.version, sha256: manifest.files['model.pt']!.sha256 })).toBe(1);
    expect([...samples.keys()].filter((key) => key.startsWith('adserve_model_info{'))).toHaveLength(1);
  });
});

describe('Redis command errors', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });

  it('counts the commands that fail while Redis is down', async () => {
    const daemon = await startDaemon({ ...baseEnv, REDIS_URL: redis.url, ADSERVE_REDIS_SYNC_MS: '100' });
    try {
      const [ad] = await serve(daemon.url, 1, 'redis-errors');
      expect((await send(daemon.url, { event_id: 'redis-up', type: 'impression', token: ad!.token })).status).toBe(200);
      const before = await scrapeMetrics(daemon.url);
      expect(sample(before, 'adserve_redis_command_errors_total', { operation: 'record' })).toBe(0);
      await redis.stop();
      expect((await send(daemon.url, { event_id: 'redis-down', type: 'click', token: ad!.token })).status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const after = await scrapeMetrics(daemon.url);
      expect(sample(after, 'adserve_redis_command_errors_total', { operation: 'record' })).toBe(1);
      expect(sample(after, 'adserve_redis_command_errors_total', { operation: 'sync' })).toBeGreaterThan(0);
      expect(sample(after, 'adserve_events_total', { type: 'click', outcome: 'internal' })).toBe(1);
    } finally {
      await daemon.stop();
    }
  });
});
