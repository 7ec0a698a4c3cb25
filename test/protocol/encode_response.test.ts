// The response encoder writes Ad's int64 fields without BigInts and takes strings as text or as
// UTF-8 bytes: what the generated reader gets back must be exactly what went in.
import { ByteBuffer } from 'flatbuffers';
import { describe, expect, it } from 'vitest';

import { encodeAdResponse, type WinningAd } from '../../src/protocol/encode_response';
import { AdResponse, BidType, ResponseStatus } from '../../src/protocol/schema';

const ad: WinningAd = {
  slot: 0,
  adId: 'a',
  campaignId: 'c',
  advertiserId: 'v',
  productId: 'p',
  title: 't',
  imageUrl: 'i',
  landingUrl: 'l',
  bidType: BidType.Cpc,
  bidMicros: 0,
  priceMicros: 0,
  pCtr: 0.1,
  pCvr: 0.02,
  ecpmMicros: 0,
  quality: 0.5,
  eventToken: 'v2.k.token',
};

function decoded(ads: WinningAd[]): AdResponse {
  return AdResponse.getRootAsAdResponse(new ByteBuffer(encodeAdResponse({ requestId: 'r', status: ResponseStatus.Ok, currency: 'USD', ads })));
}

describe('the AdResponse encoder', () => {
  it('writes every int64 amount exactly, across the 32-bit halves and up to the largest safe integer', () => {
    const amounts = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 1_234_567_890_123, Number.MAX_SAFE_INTEGER, -1, -(2 ** 32) - 3];
    const ads = amounts.map((amount, slot) => ({
      ...ad,
      slot,
      bidMicros: amount,
      priceMicros: amount + (amount < 0 ? 1 : -1) * (slot % 2),
      ecpmMicros: amount - 0.4,
    }));
    const response = decoded(ads);
    expect(response.adsLength()).toBe(amounts.length);
    for (let i = 0; i < amounts.length; i++) {
      const read = response.ads(i)!;
      expect([read.slot(), read.bidMicros(), read.priceMicros(), read.ecpmMicros()]).toEqual([
        i,
        BigInt(ads[i]!.bidMicros),
        BigInt(ads[i]!.priceMicros),
        BigInt(Math.round(ads[i]!.ecpmMicros)),
      ]);
    }
  });

  it('takes a token and the catalog strings as UTF-8 bytes as well as text', () => {
    const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
    const read = decoded([{ ...ad, eventToken: bytes('v2.0123abcd.QUJD'), title: bytes('Café ☕'), adId: bytes('ad-1') }]).ads(0)!;
    expect([read.eventToken(), read.creative()!.title(), read.adId()]).toEqual(['v2.0123abcd.QUJD', 'Café ☕', 'ad-1']);
  });
});
