// An impression, click or conversion: verify the signed token, then let the spend store enforce the
// event order of one served ad (impression, then click, then conversion; each at most once) and
// charge the billable event of the bid type at the frozen auction price, capped at what the
// campaign's budgets have left, durably, once through the process's money owner.
import { ByteBuffer, Encoding } from 'flatbuffers';

import type { Serving } from '../engine/serving';
import { addon } from '../engine/addon';
import { RequestError } from '../errors';
import { EventTokenError, maxEventTokenLength, servedAdKey, type SigningKey, verifyEventToken } from '../money/event_token';
import { bidTypeLabels, type EventOutcome, eventOutcomes, type Metrics } from '../metrics';
import { microsOfNanos, nanosOfMicros } from '../money/amounts';
import type { LedgerEntry } from '../money/ledger';
import type { Money } from '../money/money';
import { BidType, Event, EventType } from '../protocol/schema';
import { requireVerified } from './parse_request';

export interface EventContext {
  money: Money;
  metrics: Metrics;
  keys: readonly SigningKey[];
  /** The models serving now (both arms of an A/B test); the first is arm A. */
  servings: () => Serving[];
}

export interface EventInput {
  eventId: string;
  type: LedgerEntry['type'];
  token: string;
}

export interface RecordedEvent {
  /** `test`: the ad was served to test traffic, so the event is verified and answered but neither billed nor kept. */
  status: 'recorded' | 'test';
  eventId: string;
  chargedMicros: number;
  /** The charge was cut short by the campaign's daily budget. */
  capped: boolean;
}

const typeNames: Partial<Record<EventType, LedgerEntry['type']>> = {
  [EventType.Impression]: 'impression',
  [EventType.Click]: 'click',
  [EventType.Conversion]: 'conversion',
};

const billable: Record<BidType, LedgerEntry['type']> = { [BidType.Cpc]: 'click', [BidType.Cpm]: 'impression', [BidType.Cpa]: 'conversion' };

/** The outcome of a refused event; a code outside the closed set counts as internal, so the label set stays closed. */
function outcomeOf(error: unknown): EventOutcome {
  if (!(error instanceof RequestError)) return 'internal';
  if (error.code === 'duplicate_event') return 'duplicate';
  return (eventOutcomes as readonly string[]).includes(error.code) ? (error.code as EventOutcome) : 'internal';
}

/**
 * A token's text from the raw bytes of a FlatBuffer string. Read as bytes because the UTF-8 decoder
 * would silently drop a leading byte-order mark and map invalid sequences to U+FFFD, giving two byte
 * strings one text; tokens are ASCII, so each byte must stand for itself.
 */
function tokenText(bytes: Uint8Array | string | null): string {
  if (bytes === null) return '';
  if (typeof bytes === 'string' || bytes.length > maxEventTokenLength) throw new RequestError(422, 'invalid_token', 'malformed event token');
  for (const byte of bytes) if (byte < 0x21 || byte > 0x7e) throw new RequestError(422, 'invalid_token', 'event token holds a byte outside printable ASCII');
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/** Reads a binary Event FlatBuffer (verified by the C++ Verifier first) or its JSON form. */
export function parseEvent(body: Uint8Array, binary: boolean): EventInput {
  if (binary) {
    requireVerified(addon.verifyEvent, body);
    const event = Event.getRootAsEvent(new ByteBuffer(body));
    const type = typeNames[event.type()];
    if (!type) throw new RequestError(422, 'invalid_event', `unknown event type ${event.type()}`);
    return { eventId: event.eventId() ?? '', type, token: tokenText(event.token(Encoding.UTF8_BYTES)) };
  }
  let json: { event_id?: unknown; type?: unknown; token?: unknown };
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8')) as typeof json;
  } catch {
    throw new RequestError(400, 'bad_request', 'body is not valid JSON');
  }
  if (typeof json !== 'object' || json === null) throw new RequestError(400, 'bad_request', 'body must be a JSON object');
  if (json.type !== 'impression' && json.type !== 'click' && json.type !== 'conversion') {
    throw new RequestError(422, 'invalid_event', 'type must be impression, click or conversion');
  }
  if (typeof json.event_id !== 'string' || typeof json.token !== 'string') throw new RequestError(422, 'invalid_event', 'event_id and token must be strings');
  return { eventId: json.event_id, type: json.type, token: json.token };
}

/** Records one event whose type was read, counting its outcome in adserve_events_total. */
export async function recordEvent(input: EventInput, context: EventContext, nowMs: number): Promise<RecordedEvent> {
  try {
    const recorded = await chargeEvent(input, context, nowMs);
    context.metrics.events.inc({ type: input.type, outcome: recorded.status });
    return recorded;
  } catch (error) {
    context.metrics.events.inc({ type: input.type, outcome: outcomeOf(error) });
    throw error;
  }
}

async function chargeEvent(input: EventInput, context: EventContext, nowMs: number): Promise<RecordedEvent> {
  if (input.eventId.length === 0 || input.eventId.length > 128) throw new RequestError(422, 'invalid_event', 'event_id must be 1..128 characters');
  const spend = context.money.store;
  if (spend.failure) throw new RequestError(503, 'ledger_unavailable', `spend ledger is not writable: ${spend.failure.message}`);
  let token;
  try {
    token = verifyEventToken(input.token, context.keys, nowMs);
  } catch (error) {
    if (error instanceof EventTokenError) throw new RequestError(422, 'invalid_token', error.message);
    throw new RequestError(422, 'invalid_token', 'event token is not readable');
  }
  const servings = context.servings();
  // The model that served the ad, or arm A when that model has been swapped out since.
  const serving = servings.find((candidate) => candidate.modelVersion === token.modelVersion) ?? servings[0];
  const adIndex = serving?.catalog.indexOf.get(token.adId);
  if (!serving || adIndex === undefined) throw new RequestError(422, 'unknown_ad', `ad ${token.adId} is not in the serving catalog`);
  if (token.test) return { status: 'test', eventId: input.eventId, chargedMicros: 0, capped: false };
  const campaignId = serving.catalog.campaignId[adIndex]!;
  const bidType = token.bidType as BidType;
  // CPM prices are per thousand impressions: per impression that is price micros / 1000 = price nanos.
  const priceNanos = billable[bidType] !== input.type ? 0 : bidType === BidType.Cpm ? token.priceMicros : nanosOfMicros(token.priceMicros);
  const chargeNanos = await context.money.charge({
    id: input.eventId,
    serve: servedAdKey(token),
    type: input.type,
    campaignId,
    adId: token.adId,
    timeMs: nowMs,
    user: token.userId ?? '',
    priceNanos,
    served: { advertiserId: serving.catalog.advertiserId[adIndex]!, placement: token.placement, issuedMs: token.issuedMs },
  });
  const labels = { placement: token.placement, model: token.modelVersion };
  const { metrics } = context;
  if (chargeNanos > 0) metrics.spend.inc({ bid_type: bidTypeLabels[bidType] }, microsOfNanos(chargeNanos));
  if (chargeNanos < priceNanos) metrics.overdelivery.inc(microsOfNanos(priceNanos - chargeNanos));
  const monitor = metrics.calibration;
  if (input.type === 'impression') {
    monitor.impressions.inc(labels);
    monitor.predictedClicks.inc(labels, token.pCtr);
  } else if (input.type === 'click') {
    monitor.clicks.inc(labels);
    monitor.predictedConversions.inc(labels, token.pCvr);
  } else {
    monitor.conversions.inc(labels);
  }
  return { status: 'recorded', eventId: input.eventId, chargedMicros: microsOfNanos(chargeNanos), capped: chargeNanos < priceNanos };
}
