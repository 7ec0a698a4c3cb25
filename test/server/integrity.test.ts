// What the daemon keeps out of auctions and how it shapes them: policy flags, a minimum quality
// score and per-placement rules; dynamic keyword insertion in creatives; shedding beyond the
// concurrency limit; sampled request logs.
import { describe, expect, it } from 'vitest';

import { startDaemon } from '../../bench/daemon';
import { insertKeyword } from '../../src/auction/keyword_insertion';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { Placement, ResponseStatus } from '../../src/protocol/schema';
import { baseEnv, serve, tinyModelWithCatalog } from '../helpers/events';
import { postAd } from '../helpers/requests';

const answer = async (url: string, fields: Parameters<typeof encodeAdRequest>[0]) =>
  decodeAdResponse(new Uint8Array(await (await postAd(url, encodeAdRequest(fields))).arrayBuffer()));

describe('dynamic keyword insertion', () => {
  it('puts the query in the cased placeholder, or the default text when absent or too long', () => {
    expect(insertKeyword('{KeyWord:Great Shoes} on Sale', 'running  SHOES')).toBe('Running Shoes on Sale');
    expect(insertKeyword('Buy {keyword:shoes}', 'Trail Shoes')).toBe('Buy trail shoes');
    expect(insertKeyword('{Keyword:Shoes} for less', 'TRAIL shoes')).toBe('Trail shoes for less');
    expect(insertKeyword('{KEYWORD:Shoes}!', 'trail')).toBe('TRAIL!');
    expect(insertKeyword('{KeyWord:Great Shoes} on Sale', undefined)).toBe('Great Shoes on Sale');
    expect(insertKeyword('{KeyWord:Great Shoes} on Sale', 'x'.repeat(200))).toBe('Great Shoes on Sale');
    expect(insertKeyword('{KeyWord:Shoes}', 'a\u0000b\u0007c')).toBe('A B C');
    expect(insertKeyword('No placeholder', 'anything')).toBe('No placeholder');
  });
});

describe('integrity and creatives, end to end', () => {
  it('never serves ads with a blocked policy flag, inserts keywords on search only, and applies per-placement rules', async () => {
    const dir = tinyModelWithCatalog((catalog) => {
      catalog.ads.forEach((ad, i) => {
        ad.title = `{KeyWord:Great Deals} by ${ad.advertiser_id as string}`;
        if (i % 2 === 0) ad.policy_flags = ['disapproved'];
        else if (i % 3 === 0) ad.policy_flags = ['alcohol'];
      });
    });
    // Homepage auctions demand a quality score no ad reaches.
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir, ADSERVE_PLACEMENTS: JSON.stringify({ homepage: { minQualityScore: 100 } }) });
    try {
      const served = await serve(daemon.url, 80, 'policy', 'yoga mat');
      const indexOf = (adId: string): number => Number(/(\d+)$/.exec(adId)![1]);
      const catalogIds = served.map((s) => s.adId);
      expect(catalogIds.length).toBe(80);
      // Even ad indices are disapproved; the dense index is the ad id's number in the tiny catalog.
      expect(catalogIds.filter((id) => indexOf(id) % 2 === 0)).toEqual([]);
      const search = await answer(daemon.url, { query: 'yoga mat', slots: 3 });
      expect(search.adsLength()).toBeGreaterThan(0);
      for (let i = 0; i < search.adsLength(); i++) expect(search.ads(i)!.creative()!.title()).toMatch(/^Yoga Mat by adv\d+$/);
      const category = await answer(daemon.url, { placement: Placement.Category, categoryId: 'home', slots: 3 });
      expect(category.adsLength()).toBeGreaterThan(0);
      for (let i = 0; i < category.adsLength(); i++) expect(category.ads(i)!.creative()!.title()).toMatch(/^Great Deals by adv\d+$/);
      const homepage = await answer(daemon.url, { placement: Placement.Homepage, slots: 3 });
      expect(homepage.status()).toBe(ResponseStatus.NoFill);
    } finally {
      await daemon.stop();
    }
  });

  it('sheds ad requests beyond the concurrency limit with 503 and Retry-After, and logs sampled requests with their ids', async () => {
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_MAX_CONCURRENT_DECISIONS: '2', ADSERVE_LOG_SAMPLE_RATE: '1', ADSERVE_MAX_DELAY_US: '20000' });
    try {
      const responses = await Promise.all(
        Array.from({ length: 40 }, (_, i) => postAd(daemon.url, encodeAdRequest({ id: `burst-${i}`, query: 'coffee beans' }))),
      );
      const shed = responses.filter((r) => r.status === 503);
      expect(shed.length).toBeGreaterThan(0);
      expect(responses.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
      expect(shed[0]!.headers.get('retry-after')).toBe('1');
      expect(await shed[0]!.json()).toMatchObject({ error: { code: 'overloaded' } });
      await Promise.all(responses.map((r) => r.arrayBuffer().catch(() => undefined)));
      // Still serving once the burst is over.
      expect((await answer(daemon.url, { id: 'after-burst', query: 'coffee beans' })).status()).toBe(ResponseStatus.Ok);
      const shedMetric = Number(/^adserve_requests_shed_total (\d+)/m.exec(await (await fetch(`${daemon.url}/metrics`)).text())![1]);
      expect(shedMetric).toBe(shed.length);
      const logged = daemon
        .output()
        .split('\n')
        .filter((line) => line.includes('"msg":"ad request"'));
      expect(logged.some((line) => line.includes('"requestId":"after-burst"') && line.includes('"status":200'))).toBe(true);
      expect(logged.some((line) => line.includes('"status":503') && line.includes('"error":"overloaded"'))).toBe(true);
    } finally {
      await daemon.stop();
    }
  });
});
