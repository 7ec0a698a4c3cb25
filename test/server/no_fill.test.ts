// Over HTTP and WebSocket against the real daemon: every answer names its currency, a request whose
// `cur` leaves the account currency out is refused, and each no-fill reason is provoked for real and
// counted in adserve_no_fill_total. Every ad of the catalog here targets Japan only, so a request
// from elsewhere has no eligible ad while one from Japan has candidates.
import { ByteBuffer } from 'flatbuffers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { type AdRequestSpec, decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { AdRequest, NoFillReason, ResponseStatus } from '../../src/protocol/schema';
import { baseEnv, tinyModelWithCatalog } from '../helpers/events';
import { sample, scrapeMetrics } from '../helpers/metrics';
import { postAd } from '../helpers/requests';

const reasons = ['no_eligible_ads', 'below_floor', 'blocked', 'deadline', 'capacity'] as const;
let daemon: Daemon;
let advertisers: string[];
let categories: string[];

beforeAll(async () => {
  const dir = tinyModelWithCatalog((catalog) => {
    for (const ad of catalog.ads) ad.targeting = [[{ type: 'geo', value: 'JP' }]];
    advertisers = [...new Set(catalog.ads.map((ad) => ad.advertiser_id as string))];
    categories = [...new Set(catalog.ads.map((ad) => ad.category as string))];
  });
  // Two decisions in flight at most, so a burst is shed; a 20 ms batching wait, so a 1 ms deadline passes before scoring.
  daemon = await startDaemon({
    ...baseEnv,
    ADSERVE_MODEL_DIR: dir,
    ADSERVE_CURRENCY: 'EUR',
    ADSERVE_MAX_CONCURRENT_DECISIONS: '2',
    ADSERVE_MAX_DELAY_US: '20000',
  });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

const japan = (spec: AdRequestSpec): AdRequestSpec => ({ query: 'running shoes', country: 'JP', tmaxMs: 1000, ...spec });

async function decide(spec: AdRequestSpec) {
  const response = await postAd(daemon.url, encodeAdRequest(spec));
  expect(response.status).toBe(200);
  return decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
}

async function noFillCounts(): Promise<Record<string, number | undefined>> {
  const samples = await scrapeMetrics(daemon.url);
  return Object.fromEntries(reasons.map((reason) => [reason, sample(samples, 'adserve_no_fill_total', { reason })]));
}

/** Runs `act` and returns how much each reason's count rose meanwhile. */
async function countedDuring(act: () => Promise<void>): Promise<Record<string, number>> {
  const before = await noFillCounts();
  await act();
  const after = await noFillCounts();
  return Object.fromEntries(reasons.map((reason) => [reason, after[reason]! - before[reason]!]));
}

const none = { no_eligible_ads: 0, below_floor: 0, blocked: 0, deadline: 0, capacity: 0 };

describe('currency', () => {
  it('names the account currency on every answer, and accepts a cur list that includes it or no list', async () => {
    for (const cur of [undefined, ['EUR'], ['USD', 'EUR']]) {
      const answer = await decide(japan({ id: `cur-${cur?.join('-') ?? 'any'}`, cur }));
      expect(answer.status()).toBe(ResponseStatus.Ok);
      expect(answer.adsLength()).toBeGreaterThan(0);
      expect(answer.cur()).toBe('EUR');
      expect(answer.noFillReason()).toBe(NoFillReason.None);
    }
  });

  it('refuses over HTTP with 422 a cur list without the account currency, naming both', async () => {
    const response = await postAd(daemon.url, encodeAdRequest(japan({ id: 'cur-usd', cur: ['USD', 'GBP'] })));
    expect(response.status).toBe(422);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unsupported_currency');
    expect(body.error.message).toMatch(/"USD", "GBP".*only in EUR/);
  });

  it('refuses with 400 a cur vector that runs past the buffer: the Verifier checks the field before anything reads it', async () => {
    const bytes = encodeAdRequest(japan({ id: 'cur-corrupt', cur: ['EUR'] }));
    const request = AdRequest.getRootAsAdRequest(new ByteBuffer(bytes));
    // cur is the request's 22nd field: vtable slot 4 + 2 * 21.
    const vectorStart = request.bb!.__vector(request.bb_pos + request.bb!.__offset(request.bb_pos, 46));
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(vectorStart - 4, 1_000_000, true);
    const response = await postAd(daemon.url, bytes);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'bad_request' } });
  });

  it('refuses over WebSocket with a Rejected 422 answer naming both, and keeps the connection', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}/v1/ws`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const frames: Buffer[] = [];
    const answered = new Promise<void>((resolve) => ws.on('message', (data: Buffer) => frames.push(data) === 2 && resolve()));
    ws.send(encodeAdRequest(japan({ id: 'ws-cur-jpy', cur: ['JPY'] })));
    await new Promise((resolve) => setTimeout(resolve, 50));
    ws.send(encodeAdRequest(japan({ id: 'ws-cur-eur', cur: ['EUR'] })));
    await answered;
    ws.close();
    const answers = new Map(frames.map((frame) => decodeAdResponse(new Uint8Array(frame))).map((answer) => [answer.requestId(), answer]));
    const refused = answers.get('ws-cur-jpy')!;
    expect([refused.status(), refused.errorCode(), refused.cur()]).toEqual([ResponseStatus.Rejected, 422, 'EUR']);
    expect(refused.message()).toMatch(/"JPY".*only in EUR/);
    expect(answers.get('ws-cur-eur')!.status()).toBe(ResponseStatus.Ok);
  });
});

describe('no-fill reasons', () => {
  it('exports every reason from 0', async () => {
    const counts = await noFillCounts();
    for (const reason of reasons) expect(counts[reason], reason).toBeGreaterThanOrEqual(0);
  });

  it('no_eligible_ads: targeting leaves no candidate', async () => {
    let answer;
    expect(await countedDuring(async () => void (answer = await decide(japan({ id: 'nowhere', country: 'US' }))))).toEqual({ ...none, no_eligible_ads: 1 });
    expect([answer!.status(), answer!.noFillReason(), answer!.adsLength(), answer!.cur()]).toEqual([
      ResponseStatus.NoFill,
      NoFillReason.NoEligibleAds,
      0,
      'EUR',
    ]);
    expect(answer!.message()).toMatch(/no eligible ad/);
  });

  it('below_floor: candidates exist but the floor is above every one', async () => {
    let answer;
    expect(await countedDuring(async () => void (answer = await decide(japan({ id: 'floor', floorCpmMicros: 10n ** 12n }))))).toEqual({
      ...none,
      below_floor: 1,
    });
    expect([answer!.status(), answer!.noFillReason()]).toEqual([ResponseStatus.NoFill, NoFillReason.BelowFloor]);
    expect(answer!.message()).toMatch(/floor/);
  });

  it('blocked: block lists that name every advertiser, or every category, of the catalog', async () => {
    const answers: Array<ReturnType<typeof decodeAdResponse>> = [];
    const counted = await countedDuring(async () => {
      answers.push(await decide(japan({ id: 'block-advertisers', blockedAdvertisers: advertisers })));
      answers.push(await decide(japan({ id: 'block-categories', blockedCategories: [...categories, 'not-in-catalog'] })));
    });
    expect(counted).toEqual({ ...none, blocked: 2 });
    for (const answer of answers) expect([answer.status(), answer.noFillReason()]).toEqual([ResponseStatus.NoFill, NoFillReason.Blocked]);
  });

  it('a block list that leaves one advertiser still fills from it; one that excludes everything only with targeting is no_eligible_ads', async () => {
    const kept = advertisers[0]!;
    const filled = await decide(japan({ id: 'block-all-but-one', blockedAdvertisers: advertisers.slice(1), slots: 3 }));
    expect(filled.status()).toBe(ResponseStatus.Ok);
    for (let slot = 0; slot < filled.adsLength(); slot++) expect(filled.ads(slot)!.advertiserId()).toBe(kept);
    const abroad = await decide(japan({ id: 'block-all-but-one-abroad', country: 'US', blockedAdvertisers: advertisers.slice(1) }));
    expect(abroad.noFillReason()).toBe(NoFillReason.NoEligibleAds);
  });

  it('deadline: a degraded answer with nothing in it', async () => {
    let degraded = 0;
    const counted = await countedDuring(async () => {
      for (let i = 0; i < 20; i++) {
        const answer = await decide(japan({ id: `late-${i}`, tmaxMs: 1, floorCpmMicros: 10n ** 12n }));
        expect(answer.status()).toBe(ResponseStatus.NoFill);
        expect(answer.noFillReason()).toBe(answer.degraded() ? NoFillReason.Deadline : NoFillReason.BelowFloor);
        if (answer.degraded()) degraded++;
      }
    });
    expect(degraded).toBeGreaterThan(0);
    expect(counted).toEqual({ ...none, deadline: degraded, below_floor: 20 - degraded });
  });

  it('capacity: shed requests are 503 over HTTP and Rejected with reason Capacity over WebSocket, each counted', async () => {
    let shedHttp = 0;
    let shedWs = 0;
    const counted = await countedDuring(async () => {
      const responses = await Promise.all(Array.from({ length: 30 }, (_, i) => postAd(daemon.url, encodeAdRequest(japan({ id: `burst-${i}` })))));
      for (const response of responses) {
        if (response.status === 503) shedHttp++;
        await response.arrayBuffer();
      }
      const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}/v1/ws`);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const frames: Buffer[] = [];
      const answered = new Promise<void>((resolve) => ws.on('message', (data: Buffer) => frames.push(data) === 30 && resolve()));
      for (let i = 0; i < 30; i++) ws.send(encodeAdRequest(japan({ id: `ws-burst-${i}` })));
      await answered;
      ws.close();
      for (const answer of frames.map((frame) => decodeAdResponse(new Uint8Array(frame)))) {
        if (answer.status() !== ResponseStatus.Rejected) continue;
        expect([answer.errorCode(), answer.noFillReason()]).toEqual([503, NoFillReason.Capacity]);
        shedWs++;
      }
    });
    expect(shedHttp).toBeGreaterThan(0);
    expect(shedWs).toBeGreaterThan(0);
    expect(counted).toEqual({ ...none, capacity: shedHttp + shedWs });
  });
});
