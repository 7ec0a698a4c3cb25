// Over HTTP: a request that may not be personalised (GDPR without consent, COPPA, a US Privacy or
// GPP opt-out) is decided as an anonymous one, its event tokens carry no user, and its impressions
// neither read nor write frequency history. Every campaign is capped at one impression an hour.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { readModelDir } from '../../src/engine/model_dir';
import { signingKeyOf, verifyEventToken } from '../../src/money/event_token';
import { type AdRequestSpec, decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { Gender, ResponseStatus } from '../../src/protocol/schema';
import { baseEnv, send, tinyModelWithCampaigns, tokenKey } from '../helpers/events';
import { gppHeader, tcfString, usNational } from '../helpers/privacy';
import { postAd } from '../helpers/requests';
import { tinyModelDir } from '../setup/tiny_model';

const model = readModelDir(tinyModelDir);
const knownUser = model.userIds[0]!;
const signingKey = signingKeyOf(Buffer.from(tokenKey));

const consentToAll = tcfString([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
const gppTargetedOptOut = `${gppHeader([7])}~${usNational({ targeted: 1 })}`;

const context: AdRequestSpec = { query: 'running shoes', slots: 3, timestampMs: BigInt(Date.now()), country: 'US', language: 'en' };
const user: AdRequestSpec = { userId: knownUser, yob: 1985, gender: Gender.Female, segments: ['runners'] };

const notPersonalised: Array<[string, AdRequestSpec]> = [
  ['GDPR without a consent string', { gdpr: true }],
  ['GDPR with a consent string lacking purpose 4', { gdpr: true, consent: tcfString([1, 2, 3, 5, 6, 7]) }],
  ['GDPR with a malformed consent string', { gdpr: true, consent: 'CP%%not-base64' }],
  ['COPPA', { coppa: true, gdpr: true, consent: consentToAll }],
  ['a US Privacy opt-out of sale', { usPrivacy: '1YYN' }],
  ['a GPP US National opt-out', { gpp: gppTargetedOptOut, gppSid: [7] }],
];

let daemon: Daemon;

beforeAll(async () => {
  const dir = tinyModelWithCampaigns((campaign) => {
    campaign.frequency_cap = { impressions: 1, window_seconds: 3600 };
  });
  daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir, ADSERVE_INDEX_KIND: 'flat' });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

interface Answer {
  ads: Array<{ adId: string; campaignId: string; pCtr: number; token: string }>;
  userIds: string[];
}

async function decide(id: string, spec: AdRequestSpec): Promise<Answer> {
  const response = await postAd(daemon.url, encodeAdRequest({ ...context, id, ...spec }));
  expect(response.status).toBe(200);
  const answer = decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
  expect(answer.status()).toBe(ResponseStatus.Ok);
  const ads = Array.from({ length: answer.adsLength() }, (_, i) => {
    const ad = answer.ads(i)!;
    return { adId: ad.adId()!, campaignId: ad.campaignId()!, pCtr: ad.pctr(), token: ad.eventToken()! };
  });
  expect(ads.length).toBeGreaterThan(0);
  return { ads, userIds: ads.map((ad) => verifyEventToken(ad.token, [signingKey], Date.now()).userId) };
}

const ranking = (answer: Answer): Array<[string, number]> => answer.ads.map((ad) => [ad.adId, Math.round(ad.pCtr * 1e6)]);

async function impressions(answer: Answer, tag: string): Promise<void> {
  for (const [slot, ad] of answer.ads.entries()) {
    expect((await send(daemon.url, { event_id: `${tag}-${slot}`, type: 'impression', token: ad.token })).status).toBe(200);
  }
}

describe('privacy signals over HTTP', () => {
  it('a consenting request for a known user is personalised: it differs from the anonymous answer and its tokens carry the user', async () => {
    const anonymous = await decide('anonymous-consent', {});
    const consenting = await decide('consenting', { ...user, gdpr: true, consent: consentToAll, usPrivacy: '1YNN' });
    expect(ranking(consenting)).not.toEqual(ranking(anonymous));
    expect(consenting.userIds.every((id) => id === knownUser)).toBe(true);
  });

  it.each(notPersonalised)('%s: the known user is decided as an anonymous request, and no token carries them', async (name, regs) => {
    const anonymous = await decide(`anonymous-${name}`, {});
    const answer = await decide(`private-${name}`, { ...user, ...regs });
    expect(ranking(answer)).toEqual(ranking(anonymous));
    expect(answer.userIds).toEqual(answer.ads.map(() => ''));
  });

  it("a non-personalised request's impressions move no cap of its user", async () => {
    const userId = 'privacy-capless-user';
    const before = await decide('capless-before', { userId });
    const coppa = await decide('capless-coppa', { userId, coppa: true });
    await impressions(coppa, 'capless-coppa');
    // Had they been counted for the user, every campaign shown would now be capped for them.
    const after = await decide('capless-after', { userId });
    expect(ranking(after)).toEqual(ranking(before));
    expect(after.ads.some((ad) => coppa.ads.some((shown) => shown.campaignId === ad.campaignId))).toBe(true);
  });

  it('a campaign capped for a user by personalised traffic still serves that user when not personalised', async () => {
    const userId = 'privacy-capped-user';
    const personalised = await decide('capped-first', { userId });
    await impressions(personalised, 'capped-first');
    const capped = new Set(personalised.ads.map((ad) => ad.campaignId));
    const again = await decide('capped-again', { userId });
    for (const ad of again.ads) expect(capped.has(ad.campaignId)).toBe(false);
    const optedOut = await decide('capped-opted-out', { userId, usPrivacy: '1YYN' });
    expect(optedOut.ads.some((ad) => capped.has(ad.campaignId))).toBe(true);
    expect(ranking(optedOut)).toEqual(ranking(await decide('capped-anonymous', {})));
  });
});
