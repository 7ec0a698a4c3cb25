import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { addon, nativeGcmSealerOf } from '../../src/engine/addon';
import {
  type EventTokenFields,
  type GcmSealerOf,
  nodeGcmSealerOf,
  servedAdKey,
  signEventToken,
  SigningKey,
  signingKeyOf,
  verifyEventToken,
} from '../../src/money/event_token';
import { mutations } from '../helpers/tokens';

const fields: EventTokenFields = {
  requestId: 'req-42',
  adId: 'ad17',
  slot: 1,
  bidType: 1,
  priceMicros: 1_843_334,
  issuedMs: 1_000,
  expiresMs: 10_000_000,
  userId: 'user-secret-9',
  pCtr: 0.0312,
  pCvr: 0.11,
  placement: 'Search',
  modelVersion: 'demo-abc',
};
const key = signingKeyOf(Buffer.from('event-token-test-key-0123456789abcdef'));
/**
 * The token of docs/billing.md written out step by step: AES-256-GCM of the JSON tuple under
 * HMAC-SHA256(secret, epoch), nonce = the salt's counter zero-padded to 96 bits, the header as
 * additional data.
 */
function plainToken(tokenFields: EventTokenFields, secret: Buffer, salt: Buffer): string {
  const header = `v2.${createHash('sha256').update(secret).digest('hex').slice(0, 8)}`;
  const cipher = createCipheriv(
    'aes-256-gcm',
    createHmac('sha256', secret).update(salt.subarray(0, 8)).digest(),
    Buffer.concat([Buffer.alloc(4), salt.subarray(8)]),
  );
  cipher.setAAD(Buffer.from(header));
  const { requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, pCtr, pCvr, placement, modelVersion } = tokenFields;
  const tuple = [
    requestId,
    adId,
    slot,
    bidType,
    priceMicros,
    issuedMs,
    expiresMs,
    userId,
    Math.round(pCtr * 1e6) / 1e6,
    Math.round(pCvr * 1e6) / 1e6,
    placement,
    modelVersion,
  ];
  const sealed = Buffer.concat([salt, cipher.update(Buffer.from(JSON.stringify(tuple))), cipher.final(), cipher.getAuthTag()]);
  return `${header}.${sealed.toString('base64url')}`;
}

const sealers: [string, GcmSealerOf][] = [
  ['node:crypto', nodeGcmSealerOf],
  ["the addon's OpenSSL context", nativeGcmSealerOf],
];

describe.each(sealers)('event tokens sealed by %s', (_, sealerOf) => {
  it('are, byte for byte, the plain AES-256-GCM sealing of their tuple, one counter step apart', () => {
    const secret = Buffer.from('event-token-plain-key');
    const sealer = signingKeyOf(secret, sealerOf);
    const texts = [
      fields,
      { ...fields, requestId: 'req-ü-☕', userId: '', adId: 'ad"\\x\u0001', pCtr: 0.123456789, pCvr: 0, slot: 0, placement: 'Home' },
      { ...fields, userId: 'u\ud800', priceMicros: -0, pCtr: 1e-7, pCvr: Number.NaN, issuedMs: 1.5e12 + 0.5, expiresMs: 2 ** 53 },
      // One character to escape per string, each of its own kind.
      { ...fields, adId: 'a\\b', modelVersion: 'm"1', requestId: 'r\u001f', userId: 'u\udfff', pCtr: Number.POSITIVE_INFINITY, priceMicros: 1e21 },
    ];
    let previous: bigint | undefined;
    for (let i = 0; i < 3 * texts.length; i++) {
      const tokenFields = texts[i % texts.length]!;
      const token = signEventToken(tokenFields, sealer);
      const salt = Buffer.from(token.split('.')[2]!, 'base64url').subarray(0, 16);
      expect(token).toBe(plainToken(tokenFields, secret, salt));
      const counter = salt.readBigUInt64BE(8);
      if (previous !== undefined) expect(counter).toBe((previous + 1n) & 0xffff_ffff_ffff_ffffn);
      previous = counter;
    }
  });

  it('step the counter across its 32-bit halves and wrap it at 2^64, each token still the plain sealing of its salt', () => {
    const secret = Buffer.from('event-token-carry-key');
    for (const first of [2n ** 32n - 2n, 2n ** 64n - 2n]) {
      const sealer = new SigningKey(secret, sealerOf, first);
      const counters = Array.from({ length: 4 }, (_, step) => {
        // Request ids one character apart give every remainder of the sealed length modulo 3 (base64's tail).
        const tokenFields = { ...fields, requestId: 'r'.repeat(step + 1) };
        const token = signEventToken(tokenFields, sealer);
        const salt = Buffer.from(token.split('.')[2]!, 'base64url').subarray(0, 16);
        expect(token).toBe(plainToken(tokenFields, secret, salt));
        return salt.readBigUInt64BE(8);
      });
      expect(counters).toEqual([0n, 1n, 2n, 3n].map((step) => (first + step) & 0xffff_ffff_ffff_ffffn));
    }
  });

  it('seal contents of any length and width byte for byte, each token its own text once the next is sealed', () => {
    const secret = Buffer.from('event-token-long-key');
    const sealer = signingKeyOf(secret, sealerOf);
    // Three bytes per character, up to the longest contents sealed in place and past it (such
    // tokens are too long to be accepted back, but sealing them must stay exact).
    const texts = [1900, 2100, 5].map((length) => ({ ...fields, requestId: '\u2615'.repeat(length) }));
    const tokens = texts.map((tokenFields) => signEventToken(tokenFields, sealer));
    const flagged = { ...fields, test: true };
    const testToken = signEventToken(flagged, sealer);
    for (let i = 0; i < texts.length; i++) {
      expect(tokens[i]).toBe(plainToken(texts[i]!, secret, Buffer.from(tokens[i]!.split('.')[2]!, 'base64url').subarray(0, 16)));
    }
    expect(verifyEventToken(tokens[2]!, [sealer], 5_000)).toEqual(texts[2]);
    expect(verifyEventToken(testToken, [sealer], 5_000)).toEqual(flagged);
  });
});

describe("the addon's GcmSealer", () => {
  it('refuses a key, nonce or output buffer of the wrong size instead of reading or writing past it', () => {
    expect(() => new addon.GcmSealer(Buffer.alloc(16))).toThrow(/32 bytes/);
    const sealer = new addon.GcmSealer(randomBytes(32));
    expect(() => sealer.seal(Buffer.alloc(8), Buffer.alloc(0), Buffer.alloc(10), Buffer.alloc(64))).toThrow(/12 bytes/);
    expect(() => sealer.seal(Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(10), Buffer.alloc(25))).toThrow(/no room/);
    expect(sealer.seal(Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(10), Buffer.alloc(26))).toBe(26);
  });
});

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
