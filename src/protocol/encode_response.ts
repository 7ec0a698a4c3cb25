// Builds AdResponse FlatBuffers. The builder is reused across responses (one JS thread).
import { Builder } from 'flatbuffers';

import { Ad, AdResponse, BidType, Creative, NoFillReason, ResponseStatus, StageTiming } from './schema';

export interface StageNanos {
  stage: string;
  nanos: bigint;
}

/** A string field: text, or its UTF-8 bytes (the catalog keeps its text as UTF-8). */
export type Utf8Text = string | Uint8Array;

export interface WinningAd {
  slot: number;
  adId: Utf8Text;
  campaignId: string;
  advertiserId: string;
  productId: Utf8Text;
  title: Utf8Text;
  imageUrl: Utf8Text;
  landingUrl: Utf8Text;
  bidType: BidType;
  bidMicros: number;
  priceMicros: number;
  pCtr: number;
  pCvr: number;
  ecpmMicros: number;
  quality: number;
  eventToken: Utf8Text;
}

export interface AdResponseFields {
  requestId: string;
  status: ResponseStatus;
  message?: string;
  degraded?: boolean;
  modelVersion?: string;
  ads?: readonly WinningAd[];
  /** Only for requests that asked for debug. */
  timings?: readonly StageNanos[];
  /** HTTP-equivalent status of a Rejected response. */
  errorCode?: number;
  /** ISO 4217 account currency every micros amount is in (config `currency`). */
  currency: string;
  noFillReason?: NoFillReason;
}

const builder = new Builder(1024);
/** ASCII text is copied here: the builder's own TextEncoder allocates a buffer per string. */
const asciiScratch = Buffer.alloc(4096);
/** Any UTF-16 unit outside ASCII, surrogates included. */
const nonAscii = /[\u0080-\uffff]/;
/** From this length on (event tokens, URLs) one regular-expression test and one native copy beat a loop per character. */
const nativeCopyLength = 32;

function createText(text: Utf8Text): number {
  if (typeof text !== 'string' || text.length > asciiScratch.length) return builder.createString(text);
  if (text.length >= nativeCopyLength) {
    if (nonAscii.test(text)) return builder.createString(text);
    asciiScratch.write(text, 0, 'latin1');
    return builder.createString(asciiScratch.subarray(0, text.length));
  }
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return builder.createString(text);
    asciiScratch[i] = code;
  }
  return builder.createString(asciiScratch.subarray(0, text.length));
}

/**
 * The vtable slots of Ad's int64 fields: their positions in table Ad of schemas/ad_response.fbs
 * (test/protocol/encode_response.test.ts reads each back). Written through addInt64Field because
 * the generated adders take BigInts and the builder makes several more per field.
 */
const adInt64Slots = { bidMicros: 7, priceMicros: 8, ecpmMicros: 11 } as const;

/** An int64 field of a safe integer, as two 32-bit halves, little end first; zero, the default, is left out as the generated adders do. */
function addInt64Field(slot: number, value: number): void {
  if (value === 0) return;
  const high = Math.floor(value / 2 ** 32);
  builder.prep(8, 0);
  // The builder writes downwards: the high half first puts it at the higher address.
  builder.writeInt32(high);
  builder.writeInt32(value - high * 2 ** 32);
  builder.slot(slot);
}

function encodeAd(ad: WinningAd): number {
  const creative = Creative.createCreative(builder, createText(ad.title), 0, createText(ad.imageUrl), createText(ad.landingUrl));
  const adId = createText(ad.adId);
  const campaignId = createText(ad.campaignId);
  const advertiserId = createText(ad.advertiserId);
  const productId = createText(ad.productId);
  const token = createText(ad.eventToken);
  Ad.startAd(builder);
  Ad.addSlot(builder, ad.slot);
  Ad.addAdId(builder, adId);
  Ad.addCampaignId(builder, campaignId);
  Ad.addAdvertiserId(builder, advertiserId);
  Ad.addProductId(builder, productId);
  Ad.addCreative(builder, creative);
  Ad.addBidType(builder, ad.bidType);
  addInt64Field(adInt64Slots.bidMicros, ad.bidMicros);
  addInt64Field(adInt64Slots.priceMicros, ad.priceMicros);
  Ad.addPctr(builder, ad.pCtr);
  Ad.addPcvr(builder, ad.pCvr);
  addInt64Field(adInt64Slots.ecpmMicros, Math.round(ad.ecpmMicros));
  Ad.addQuality(builder, ad.quality);
  Ad.addEventToken(builder, token);
  return Ad.endAd(builder);
}

export function encodeAdResponse(fields: AdResponseFields): Uint8Array {
  builder.clear();
  const requestId = createText(fields.requestId);
  const message = fields.message === undefined ? 0 : createText(fields.message);
  const modelVersion = fields.modelVersion === undefined ? 0 : createText(fields.modelVersion);
  const currency = createText(fields.currency);
  const ads = AdResponse.createAdsVector(
    builder,
    (fields.ads ?? []).map((ad) => encodeAd(ad)),
  );
  let timings = 0;
  if (fields.timings !== undefined) {
    const offsets = fields.timings.map(({ stage, nanos }) => StageTiming.createStageTiming(builder, createText(stage), nanos));
    timings = AdResponse.createTimingsVector(builder, offsets);
  }
  const response = AdResponse.createAdResponse(
    builder,
    requestId,
    fields.status,
    message,
    ads,
    fields.degraded ?? false,
    modelVersion,
    timings,
    fields.errorCode ?? 0,
    currency,
    fields.noFillReason ?? NoFillReason.None,
  );
  AdResponse.finishAdResponseBuffer(builder, response);
  // Copied out because the builder's buffer is reused by the next response; into Node's buffer
  // pool, which a response this small fits, rather than a new ArrayBuffer per response as slice() makes.
  const bytes = builder.asUint8Array();
  const copy = Buffer.allocUnsafe(bytes.length);
  copy.set(bytes);
  return copy;
}
