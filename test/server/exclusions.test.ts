// Over HTTP: block lists, frequency caps and pacing keep ads out of retrieval itself, so a request
// whose best candidates are all excluded still fills from the rest. The daemon retrieves and scores
// 20 candidates with an exact (flat) search; an engine opened here with the same settings tells which
// 20 those are, and the test excludes every one of them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { loadConfig } from '../../src/config';
import { adHistory, openEngine } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { engineSettings } from '../../src/engine/serving';
import { signEventToken, signingKeyOf } from '../../src/money/event_token';
import { type AdRequestSpec, decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { Placement, ResponseStatus } from '../../src/protocol/schema';
import { baseEnv, send, tinyModelWithCatalog, tokenKey } from '../helpers/events';
import { postAd } from '../helpers/requests';
import { tinyModelDir } from '../setup/tiny_model';

const env = { ...baseEnv, ADSERVE_INDEX_KIND: 'flat', ADSERVE_ANN_CANDIDATES: '20', ADSERVE_SCORE_CANDIDATES: '20' };
const model = readModelDir(tinyModelDir);
const modelCatalog = catalogFromFile(model);
const { catalog } = modelCatalog;
const timestampMs = BigInt(Date.now());
const blockRequest: AdRequestSpec = { id: 'block', query: 'running shoes', userId: 'block-user', slots: 5, timestampMs };
const capRequest: AdRequestSpec = { id: 'cap', query: 'coffee beans', userId: 'cap-user', slots: 5, timestampMs };
const pacedRequest: AdRequestSpec = { id: 'paced', query: 'yoga mat', userId: 'paced-user', slots: 5, timestampMs };

let daemon: Daemon;
/** Its own daemon: the tiny model's requests share candidates, so pacing there would keep the capped campaigns out for every user. */
let pacedDaemon: Daemon;
// The ads the daemon would score for each request were nothing excluded.
const scored = new Map<AdRequestSpec, number[]>();
let pacedOut: Set<string>;

beforeAll(async () => {
  const engine = await openEngine(model, modelCatalog, adHistory(model), engineSettings(loadConfig(env)));
  try {
    for (const spec of [blockRequest, capRequest, pacedRequest]) scored.set(spec, Array.from((await engine.score(encodeAdRequest(spec), 5000)).adIndex));
  } finally {
    engine.close();
  }
  // Every campaign is capped at one impression an hour (one daemon); the paced request's campaigns
  // are day-parted off for this hour and the next (participation 0; the other daemon).
  pacedOut = new Set(scored.get(pacedRequest)!.map((ad) => catalog.campaignId[ad]!));
  const hour = new Date().getUTCHours();
  const capped = tinyModelWithCatalog((json) => {
    for (const campaign of json.campaigns) campaign.frequency_cap = { impressions: 1, window_seconds: 3600 };
  });
  const paced = tinyModelWithCatalog((json) => {
    for (const campaign of json.campaigns) {
      if (pacedOut.has(campaign.id as string)) campaign.day_parting = Array.from({ length: 24 }, (_, h) => (h === hour || h === (hour + 1) % 24 ? 0 : 1));
    }
  });
  [daemon, pacedDaemon] = await Promise.all([startDaemon({ ...env, ADSERVE_MODEL_DIR: capped }), startDaemon({ ...env, ADSERVE_MODEL_DIR: paced })]);
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
  expect(await pacedDaemon.stop()).toBe(0);
});

async function decide(spec: AdRequestSpec, url = daemon.url) {
  const response = await postAd(url, encodeAdRequest(spec));
  expect(response.status).toBe(200);
  const answer = decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
  const ads = Array.from({ length: answer.adsLength() }, (_, i) => catalog.indexOf.get(answer.ads(i)!.adId()!)!);
  return { status: answer.status(), ads, modelVersion: answer.modelVersion()! };
}

describe('exclusions over HTTP', () => {
  it.each([
    ['advertiser', 'blockedAdvertisers', (ad: number) => catalog.advertiserId[ad]!],
    ['category', 'blockedCategories', (ad: number) => catalog.category[ad]!],
    ['product', 'blockedProducts', (ad: number) => catalog.productId.at(ad)!],
  ] as const)('fills a request whose every scored ad has a blocked %s, with none of them', async (_, field, keyOf) => {
    const blocked = [...new Set(scored.get(blockRequest)!.map(keyOf))];
    const answer = await decide({ ...blockRequest, [field]: blocked });
    expect(answer.status).toBe(ResponseStatus.Ok);
    for (const ad of answer.ads) expect(blocked).not.toContain(keyOf(ad));
  });

  it('fills a request whose every scored campaign the user has reached the frequency cap of, with none of them', async () => {
    const capped = [...new Set(scored.get(capRequest)!.map((ad) => catalog.campaignId[ad]!))];
    const { modelVersion } = await decide({ ...capRequest, userId: 'someone-else' });
    const key = signingKeyOf(Buffer.from(tokenKey));
    const now = Date.now();
    for (const campaign of capped) {
      const ad = scored.get(capRequest)!.find((a) => catalog.campaignId[a] === campaign)!;
      const token = signEventToken(
        {
          requestId: `cap-${campaign}`,
          adId: catalog.adId.at(ad)!,
          slot: 0,
          bidType: catalog.bidType[ad]!,
          priceMicros: 1000,
          issuedMs: now,
          expiresMs: now + 600_000,
          userId: capRequest.userId!,
          pCtr: 0.05,
          pCvr: 0.05,
          placement: Placement[Placement.Search],
          modelVersion,
        },
        key,
      );
      expect((await send(daemon.url, { event_id: `cap-${campaign}`, type: 'impression', token })).status).toBe(200);
    }
    const answer = await decide(capRequest);
    expect(answer.status).toBe(ResponseStatus.Ok);
    for (const ad of answer.ads) expect(capped).not.toContain(catalog.campaignId[ad]);
    // The caps are the user's: another user still sees those campaigns.
    const other = await decide({ ...capRequest, userId: 'uncapped-user' });
    expect(other.ads.some((ad) => capped.includes(catalog.campaignId[ad]!))).toBe(true);
  });

  it('fills a request whose every scored campaign pacing sits out, with none of them', async () => {
    const answer = await decide(pacedRequest, pacedDaemon.url);
    expect(answer.status).toBe(ResponseStatus.Ok);
    for (const ad of answer.ads) expect(pacedOut.has(catalog.campaignId[ad]!)).toBe(false);
  });
});
