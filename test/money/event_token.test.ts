import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { type EventTokenFields, servedAdKey, signEventToken, signingKeyOf, verifyEventToken } from '../../src/money/event_token';
import { mutations } from '../helpers/tokens';

const fields: EventTokenFields = {
  requestId: 'req-42', adId: 'ad17', slot: 1, bidType: 1, priceMicros: 1_843_334, issuedMs: 1_000, expiresMs: 10_000_000,
  userId: 'user-secret-9', pCtr: 0.0312, pCvr: 0.11, placement: 'Search', modelVersion: 'demo-abc',
};
const key = signingKeyOf(Buffer.from('event-token-test-key-0123456789abcdef'));
describe('event tokens', () => {
  it('round-trips the frozen auction fields', () => {
    const token = signEventToken(fields, key);
    expect(token).toMatch(/^v2\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$/);
    expect(verifyEventToken(token, [key], 5_000)).toEqual(fields);
  });

  it('hides the price, the user id and the predictions from whoever holds the token', () => {
    const token = signEventToken(fields, key);
    const visible = `${token} ${Buffer.from(token.split('.')[2]!, 'base64url').toString('latin1')}`;
    for (const secret of ['1843334', 'user-secret-9', '0.0312', 'req-42']) expect(visible).not.toContain(secret);
  });

  it('accepts exactly one spelling: every one-character mutation and affix is refused', () => {
    const token = signEventToken(fields, key);
    const variants = mutations(token);
    expect(variants.length).toBeGreaterThan(token.length * 70);
    const accepted = variants.filter((variant) => {
      try {
        verifyEventToken(variant, [key], 5_000);
        return true;
      } catch {
        return false;
      }
    });
    expect(accepted).toEqual([]);
  });

  it('refuses expired tokens and tokens of keys no longer held; opens tokens of rotated-out keys', () => {
    const token = signEventToken(fields, key);
    expect(() => verifyEventToken(token, [key], fields.expiresMs + 1)).toThrow(/expired/);
    const next = signingKeyOf(randomBytes(32));
    expect(verifyEventToken(token, [next, key], 5_000)).toEqual(fields);
    expect(() => verifyEventToken(token, [next], 5_000)).toThrow(/unknown key/);
    // A key id that names a held key but a body sealed under another secret does not open.
    const impostor = Object.assign(signingKeyOf(randomBytes(32)), { id: key.id });
    expect(() => verifyEventToken(signEventToken(fields, impostor), [key], 5_000)).toThrow(/signature/);
  });

  it('opens in any process holding the secret, and never reuses a nonce within one', () => {
    const otherProcess = signingKeyOf(Buffer.from('event-token-test-key-0123456789abcdef'));
    const tokens = Array.from({ length: 2000 }, () => signEventToken(fields, key));
    for (const token of tokens.slice(0, 50)) expect(verifyEventToken(token, [otherProcess], 5_000)).toEqual(fields);
    const salts = new Set(tokens.map((token) => Buffer.from(token.split('.')[2]!, 'base64url').subarray(0, 16).toString('hex')));
    expect(salts.size).toBe(tokens.length);
    // Both processes seal under their own epochs: their salts differ from the first byte on, almost surely.
    const mine = Buffer.from(tokens[0]!.split('.')[2]!, 'base64url').subarray(0, 8);
    const theirs = Buffer.from(signEventToken(fields, otherProcess).split('.')[2]!, 'base64url').subarray(0, 8);
    expect(mine.equals(theirs)).toBe(false);
  });

  it('names the served ad by its contents: two sealings of one served ad share the key, other slots do not', () => {
    const first = verifyEventToken(signEventToken(fields, key), [key], 5_000);
    const second = verifyEventToken(signEventToken(fields, key), [key], 5_000);
    expect(servedAdKey(first)).toBe(servedAdKey(second));
    expect(servedAdKey({ ...fields, slot: 2 })).not.toBe(servedAdKey(fields));
    expect(servedAdKey({ ...fields, issuedMs: 1_001 })).not.toBe(servedAdKey(fields));
  });
});
