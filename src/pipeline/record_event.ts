// An impression, click or conversion: verify the signed token, enforce the event order of one served
// ad (impression, then click, then conversion; each at most once), charge the billable event of the
// bid type at the frozen auction price capped at the campaign's remaining daily budget, make it
// durable, then update budgets.
import { ByteBuffer } from 'flatbuffers';

import type { Serving } from '../engine/serving';
import { addon } from '../engine/addon';
import { RequestError } from '../errors';
import { dayOf } from '../money/budgets';
import { EventTokenError, type SigningKey, verifyEventToken } from '../money/event_token';
import type { Metrics } from '../metrics';
import type { Ledger, LedgerEntry } from '../money/ledger';
import { BidType, Event, EventType } from '../protocol/schema';
import { requireVerified } from './parse_request';

export interface EventContext {
  ledger: Ledger;
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
  status: 'recorded';
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

/** Reads a binary Event FlatBuffer (verified by the C++ Verifier first) or its JSON form. */
export function parseEvent(body: Uint8Array, binary: boolean): EventInput {
  if (binary) {
    requireVerified(addon.verifyEvent, body);
    const event = Event.getRootAsEvent(new ByteBuffer(body));
    const type = typeNames[event.type()];
    if (!type) throw new RequestError(422, 'invalid_event', `unknown event type ${event.type()}`);
    return { eventId: event.eventId() ?? '', type, token: event.token() ?? '' };
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

export async function recordEvent(input: EventInput, context: EventContext, nowMs: number): Promise<RecordedEvent> {
  if (input.eventId.length === 0 || input.eventId.length > 128) throw new RequestError(422, 'invalid_event', 'event_id must be 1..128 characters');
  const { ledger } = context;
  if (ledger.failure) throw new RequestError(503, 'ledger_unavailable', `spend ledger is not writable: ${ledger.failure.message}`);
  let token;
  try {
    token = verifyEventToken(input.token, context.keys, nowMs);
  } catch (error) {
    if (error instanceof EventTokenError) throw new RequestError(422, 'invalid_token', error.message);
    throw new RequestError(422, 'invalid_token', 'event token is not readable');
  }
  if (ledger.state.eventIds.has(input.eventId)) throw new RequestError(409, 'duplicate_event', `event ${input.eventId} was already recorded`);
  const serve = input.token.slice(input.token.lastIndexOf('.') + 1);
  const seen = ledger.state.serves.get(serve);
  if (seen?.has(input.type)) throw new RequestError(409, 'duplicate_event', `this ad's ${input.type} was already recorded`);
  if (input.type === 'click' && !seen?.has('impression')) throw new RequestError(422, 'out_of_order', 'a click needs an impression of the same ad first');
  if (input.type === 'conversion' && !seen?.has('click')) throw new RequestError(422, 'out_of_order', 'a conversion needs a click on the same ad first');

  const servings = context.servings();
  // The model that served the ad, or arm A when that model has been swapped out since.
  const serving = servings.find((candidate) => candidate.modelVersion === token.modelVersion) ?? servings[0];
  const adIndex = serving?.catalog.indexOf.get(token.adId);
  if (!serving || adIndex === undefined) throw new RequestError(422, 'unknown_ad', `ad ${token.adId} is not in the serving catalog`);
  const campaignId = serving.catalog.campaignId[adIndex]!;
  const bidType = token.bidType as BidType;
  const day = dayOf(nowMs);
  let chargeNanos = 0;
  let capped = false;
  if (billable[bidType] === input.type) {
    // CPM prices are per thousand impressions: per impression that is price micros / 1000 = price nanos.
    const priceNanos = bidType === BidType.Cpm ? token.priceMicros : token.priceMicros * 1000;
    const remaining = serving.budgets.remainingNanos(campaignId, day);
    chargeNanos = Math.min(priceNanos, remaining);
    capped = chargeNanos < priceNanos;
  }
  await ledger.append({ id: input.eventId, serve, type: input.type, campaignId, adId: token.adId, chargeNanos, day, timeMs: nowMs, user: token.userId ?? '' });
  // Every serving engine must drop a campaign whose budget ran out.
  for (const each of servings) each.budgets.check(campaignId, nowMs);
  const labels = { placement: token.placement, model: token.modelVersion };
  const monitor = context.metrics.calibration;
  if (input.type === 'impression') {
    monitor.impressions.inc(labels);
    monitor.predictedClicks.inc(labels, token.pCtr);
  } else if (input.type === 'click') {
    monitor.clicks.inc(labels);
    monitor.predictedConversions.inc(labels, token.pCvr);
  } else {
    monitor.conversions.inc(labels);
  }
  return { status: 'recorded', eventId: input.eventId, chargedMicros: chargeNanos / 1000, capped };
}
