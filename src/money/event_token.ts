// Signed event tokens (AUCTION.md "Billing, events and budgets"): the price is frozen at auction
// time and bound, with the request, ad, slot and bid type, under an HMAC-SHA256 with a server key.
// Format: v1.<key id>.<base64url(JSON [request id, ad id, slot, bid type, price, issued ms, expires ms,
// user id, pCTR, pCVR, placement, model version])>.<base64url(HMAC over "v1.<key id>.<payload>")>
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface EventTokenFields {
  requestId: string;
  adId: string;
  slot: number;
  bidType: number;
  priceMicros: number;
  issuedMs: number;
  expiresMs: number;
  /** The request's user id ('' when anonymous), for frequency caps. */
  userId: string;
  /** What the model predicted at auction time, for the online calibration monitor. */
  pCtr: number;
  pCvr: number;
  placement: string;
  modelVersion: string;
}

export interface SigningKey {
  id: string;
  secret: Buffer;
}

export function signEventToken(fields: EventTokenFields, key: SigningKey): string {
  const payload = Buffer.from(
    JSON.stringify([
      fields.requestId, fields.adId, fields.slot, fields.bidType, fields.priceMicros, fields.issuedMs, fields.expiresMs, fields.userId,
      Math.round(fields.pCtr * 1e6) / 1e6, Math.round(fields.pCvr * 1e6) / 1e6, fields.placement, fields.modelVersion,
    ]),
  ).toString('base64url');
  const signed = `v1.${key.id}.${payload}`;
  return `${signed}.${createHmac('sha256', key.secret).update(signed).digest('base64url')}`;
}

export class EventTokenError extends Error {}

/** Checks the signature (any key still held) and expiry; returns the frozen auction fields. */
export function verifyEventToken(token: string, keys: readonly SigningKey[], nowMs: number): EventTokenFields {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1') throw new EventTokenError('malformed event token');
  const [, keyId, payload, signature] = parts as [string, string, string, string];
  const key = keys.find((candidate) => candidate.id === keyId);
  if (!key) throw new EventTokenError(`event token signed with unknown key ${JSON.stringify(keyId)}`);
  const expected = createHmac('sha256', key.secret).update(`v1.${keyId}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new EventTokenError('event token signature does not match');
  const [requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, pCtr, pCvr, placement, modelVersion] = JSON.parse(
    Buffer.from(payload, 'base64url').toString(),
  ) as [string, string, number, number, number, number, number, string, number, number, string, string];
  if (nowMs > expiresMs) throw new EventTokenError('event token has expired');
  return { requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, pCtr, pCvr, placement, modelVersion };
}
