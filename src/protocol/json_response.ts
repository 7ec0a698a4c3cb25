// The JSON form of an AdResponse, the answer to a JSON AdRequest: every field under its name in
// schemas/ad_response.fbs, enums by their schema names, micros and nanos as numbers (micros stay
// below 2^53 by the amount limits), an absent string as ''. One table below lists every field of
// each response table; a schema field without an entry fails test/protocol/json_mapping.test.ts.
import { ByteBuffer } from 'flatbuffers';

import { Ad, AdResponse, BidType, Creative, NoFillReason, ResponseStatus, StageTiming } from './schema';

type Readers<T> = Record<string, (table: T) => unknown>;

/** A float field as the shortest decimal that reads back as the same 32-bit float, not its double expansion (0.1, not 0.10000000149011612). */
function float32(value: number): number {
  for (let digits = 1; digits < 9; digits++) {
    const shorter = Number(value.toPrecision(digits));
    if (Math.fround(shorter) === value) return shorter;
  }
  return value;
}

const creativeReaders: Readers<Creative> = {
  title: (creative) => creative.title() ?? '',
  description: (creative) => creative.description() ?? '',
  image_url: (creative) => creative.imageUrl() ?? '',
  landing_url: (creative) => creative.landingUrl() ?? '',
};

const adReaders: Readers<Ad> = {
  slot: (ad) => ad.slot(),
  ad_id: (ad) => ad.adId() ?? '',
  campaign_id: (ad) => ad.campaignId() ?? '',
  advertiser_id: (ad) => ad.advertiserId() ?? '',
  product_id: (ad) => ad.productId() ?? '',
  creative: (ad) => {
    const creative = ad.creative();
    return creative && read(creativeReaders, creative);
  },
  bid_type: (ad) => BidType[ad.bidType()],
  bid_micros: (ad) => Number(ad.bidMicros()),
  price_micros: (ad) => Number(ad.priceMicros()),
  pctr: (ad) => float32(ad.pctr()),
  pcvr: (ad) => float32(ad.pcvr()),
  ecpm_micros: (ad) => Number(ad.ecpmMicros()),
  quality: (ad) => float32(ad.quality()),
  event_token: (ad) => ad.eventToken() ?? '',
};

const stageTimingReaders: Readers<StageTiming> = {
  stage: (timing) => timing.stage() ?? '',
  nanos: (timing) => Number(timing.nanos()),
};

const adResponseReaders: Readers<AdResponse> = {
  request_id: (response) => response.requestId() ?? '',
  status: (response) => ResponseStatus[response.status()],
  message: (response) => response.message() ?? '',
  ads: (response) => Array.from({ length: response.adsLength() }, (_, i) => read(adReaders, response.ads(i)!)),
  degraded: (response) => response.degraded(),
  model_version: (response) => response.modelVersion() ?? '',
  timings: (response) => Array.from({ length: response.timingsLength() }, (_, i) => read(stageTimingReaders, response.timings(i)!)),
  error_code: (response) => response.errorCode(),
  cur: (response) => response.cur() ?? '',
  no_fill_reason: (response) => NoFillReason[response.noFillReason()],
};

/** Field names the JSON form gives each response table, by schema name. */
export const responseFieldNames: Record<string, readonly string[]> = {
  AdResponse: Object.keys(adResponseReaders),
  Ad: Object.keys(adReaders),
  Creative: Object.keys(creativeReaders),
  StageTiming: Object.keys(stageTimingReaders),
};

function read<T>(readers: Readers<T>, table: T): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const [name, reader] of Object.entries(readers)) json[name] = reader(table);
  return json;
}

/** The JSON text of an AdResponse FlatBuffer this process encoded. */
export function adResponseJson(bytes: Uint8Array): string {
  return JSON.stringify(read(adResponseReaders, AdResponse.getRootAsAdResponse(new ByteBuffer(bytes))));
}
