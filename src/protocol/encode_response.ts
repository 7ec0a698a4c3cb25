// Builds AdResponse FlatBuffers. The builder is reused across responses (one JS thread).
import { Builder } from 'flatbuffers';

import { Ad, AdResponse, BidType, Creative, ResponseStatus, StageTiming } from './schema';

export interface StageNanos {
  stage: string;
  nanos: bigint;
}

export interface WinningAd {
  slot: number;
  adId: string;
  campaignId: string;
  advertiserId: string;
  productId: string;
  title: string;
  imageUrl: string;
  landingUrl: string;
  bidType: BidType;
  bidMicros: number;
  priceMicros: number;
  pCtr: number;
  pCvr: number;
  ecpmMicros: number;
  quality: number;
  eventToken: string;
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
}

const builder = new Builder(1024);

function encodeAd(ad: WinningAd): number {
  const creative = Creative.createCreative(builder, builder.createString(ad.title), 0, builder.createString(ad.imageUrl), builder.createString(ad.landingUrl));
  const adId = builder.createString(ad.adId);
  const campaignId = builder.createString(ad.campaignId);
  const advertiserId = builder.createString(ad.advertiserId);
  const productId = builder.createString(ad.productId);
  const token = builder.createString(ad.eventToken);
  Ad.startAd(builder);
  Ad.addSlot(builder, ad.slot);
  Ad.addAdId(builder, adId);
  Ad.addCampaignId(builder, campaignId);
  Ad.addAdvertiserId(builder, advertiserId);
  Ad.addProductId(builder, productId);
  Ad.addCreative(builder, creative);
  Ad.addBidType(builder, ad.bidType);
  Ad.addBidMicros(builder, BigInt(ad.bidMicros));
  Ad.addPriceMicros(builder, BigInt(ad.priceMicros));
  Ad.addPctr(builder, ad.pCtr);
  Ad.addPcvr(builder, ad.pCvr);
  Ad.addEcpmMicros(builder, BigInt(Math.round(ad.ecpmMicros)));
  Ad.addQuality(builder, ad.quality);
  Ad.addEventToken(builder, token);
  return Ad.endAd(builder);
}

export function encodeAdResponse(fields: AdResponseFields): Uint8Array {
  builder.clear();
  const requestId = builder.createString(fields.requestId);
  const message = fields.message === undefined ? 0 : builder.createString(fields.message);
  const modelVersion = fields.modelVersion === undefined ? 0 : builder.createString(fields.modelVersion);
  const ads = AdResponse.createAdsVector(builder, (fields.ads ?? []).map((ad) => encodeAd(ad)));
  let timings = 0;
  if (fields.timings !== undefined) {
    const offsets = fields.timings.map(({ stage, nanos }) =>
      StageTiming.createStageTiming(builder, builder.createString(stage), nanos),
    );
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
  );
  AdResponse.finishAdResponseBuffer(builder, response);
  // Copied out because the builder's buffer is reused by the next response.
  return builder.asUint8Array().slice();
}
