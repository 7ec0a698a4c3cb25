// Example TypeScript client: the project's own request encoder and response reader (src/protocol,
// over the flatc TypeScript output) with the HTTP calls around them, on the global fetch.
import { Builder } from 'flatbuffers';

import { type AdRequestSpec, decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { type AdResponse, BidType, Event, EventType, NoFillReason, ResponseStatus } from '../../src/protocol/schema';

export type { AdRequestSpec };

const flatbuffersContentType = 'application/x-flatbuffers';

/** One served ad as plain data; money in integer micros, enums by name. */
export interface ServedAd {
  slot: number;
  adId: string;
  campaignId: string;
  advertiserId: string;
  productId: string;
  creative: { title: string; description: string; imageUrl: string; landingUrl: string } | null;
  bidType: keyof typeof BidType;
  bidMicros: number;
  priceMicros: number;
  pctr: number;
  pcvr: number;
  ecpmMicros: number;
  quality: number;
  /** Send back unchanged with the ad's events. */
  eventToken: string;
}

export interface AdDecision {
  requestId: string;
  status: keyof typeof ResponseStatus;
  message: string;
  ads: ServedAd[];
  degraded: boolean;
  modelVersion: string;
  timings: Array<{ stage: string; nanos: number }>;
  errorCode: number;
  /** ISO 4217 currency of every micros amount (the account currency). */
  cur: string;
  /** Why a NoFill answer is empty; Capacity on a 503 overloaded refusal; None otherwise. */
  noFillReason: keyof typeof NoFillReason;
}

export interface AdEvent {
  eventId: string;
  type: 'impression' | 'click' | 'conversion';
  token: string;
  timestampMs?: number;
  /** Order value of a conversion, in micros. */
  valueMicros?: number;
}

export interface RecordedEvent {
  eventId: string;
  chargedMicros: number;
  /** The charge was cut short by the campaign's budget. */
  capped: boolean;
}

/** A refusal from the daemon: its HTTP status and the `{"error": {code, message}}` it sent. */
export class AdserveError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter: string | null,
  ) {
    super(`${status} ${code}: ${message}`);
  }
}

/** The AdResponse as plain data, every field copied out of the FlatBuffer. */
export function adDecisionOf(response: AdResponse): AdDecision {
  const ads: ServedAd[] = [];
  for (let i = 0; i < response.adsLength(); i++) {
    const ad = response.ads(i)!;
    const creative = ad.creative();
    ads.push({
      slot: ad.slot(),
      adId: ad.adId() ?? '',
      campaignId: ad.campaignId() ?? '',
      advertiserId: ad.advertiserId() ?? '',
      productId: ad.productId() ?? '',
      creative: creative && {
        title: creative.title() ?? '',
        description: creative.description() ?? '',
        imageUrl: creative.imageUrl() ?? '',
        landingUrl: creative.landingUrl() ?? '',
      },
      bidType: BidType[ad.bidType()] as keyof typeof BidType,
      bidMicros: Number(ad.bidMicros()),
      priceMicros: Number(ad.priceMicros()),
      pctr: ad.pctr(),
      pcvr: ad.pcvr(),
      ecpmMicros: Number(ad.ecpmMicros()),
      quality: ad.quality(),
      eventToken: ad.eventToken() ?? '',
    });
  }
  const timings = [];
  for (let i = 0; i < response.timingsLength(); i++) {
    const timing = response.timings(i)!;
    timings.push({ stage: timing.stage() ?? '', nanos: Number(timing.nanos()) });
  }
  return {
    requestId: response.requestId() ?? '',
    status: ResponseStatus[response.status()] as keyof typeof ResponseStatus,
    message: response.message() ?? '',
    ads,
    degraded: response.degraded(),
    modelVersion: response.modelVersion() ?? '',
    timings,
    errorCode: response.errorCode(),
    cur: response.cur() ?? '',
    noFillReason: NoFillReason[response.noFillReason()] as keyof typeof NoFillReason,
  };
}

const eventTypes = { impression: EventType.Impression, click: EventType.Click, conversion: EventType.Conversion } as const;

/** The Event FlatBuffer (file identifier ADEV) for POST /v1/events. */
export function encodeEvent(event: AdEvent): Uint8Array {
  const builder = new Builder(256);
  const eventId = builder.createString(event.eventId);
  const token = builder.createString(event.token);
  Event.startEvent(builder);
  Event.addEventId(builder, eventId);
  Event.addType(builder, eventTypes[event.type]);
  Event.addToken(builder, token);
  if (event.timestampMs !== undefined) Event.addTimestampMs(builder, BigInt(event.timestampMs));
  if (event.valueMicros !== undefined) Event.addValueMicros(builder, BigInt(event.valueMicros));
  Event.finishEventBuffer(builder, Event.endEvent(builder));
  return builder.asUint8Array().slice();
}

/** One daemon at `baseUrl` (for example http://127.0.0.1:8080); each call is one HTTP request. */
export class AdserveClient {
  constructor(
    readonly baseUrl: string,
    readonly timeoutMs = 5000,
  ) {}

  /** POSTs `body` and returns the answer's bytes; throws AdserveError for any status but 200. */
  async post(path: string, body: Uint8Array, contentType: string): Promise<Uint8Array> {
    const answer = await fetch(`${this.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': contentType },
      body,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const bytes = new Uint8Array(await answer.arrayBuffer());
    if (answer.status === 200) return bytes;
    const text = Buffer.from(bytes).toString('utf8');
    let error: { code?: unknown; message?: unknown } | undefined;
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error;
    } catch {
      // Not one of adserve's JSON errors (a proxy's page, say): keep the text as the message.
    }
    throw new AdserveError(answer.status, String(error?.code ?? 'http_error'), String(error?.message ?? text.trim()), answer.headers.get('retry-after'));
  }

  /** POST /v1/ads with an encoded AdRequest; the AdResponse bytes. */
  postAdRequest(body: Uint8Array): Promise<Uint8Array> {
    return this.post('/v1/ads', body, flatbuffersContentType);
  }

  async requestAds(spec: AdRequestSpec): Promise<AdDecision> {
    return adDecisionOf(decodeAdResponse(await this.postAdRequest(encodeAdRequest(spec))));
  }

  /** POST /v1/events as JSON or, with `binary`, as an Event FlatBuffer. A repeated event is AdserveError 409. */
  async sendEvent(event: AdEvent, binary = false): Promise<RecordedEvent> {
    const json = { event_id: event.eventId, type: event.type, token: event.token, timestamp_ms: event.timestampMs, value_micros: event.valueMicros };
    const answer = binary
      ? await this.post('/v1/events', encodeEvent(event), flatbuffersContentType)
      : await this.post('/v1/events', Buffer.from(JSON.stringify(json)), 'application/json');
    const { eventId, chargedMicros, capped } = JSON.parse(Buffer.from(answer).toString('utf8')) as RecordedEvent;
    return { eventId, chargedMicros, capped };
  }
}
