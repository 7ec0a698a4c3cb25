// Event tokens (docs/billing.md): the auction's frozen price, bound with the served ad's identity
// under a server key, sealed with AES-256-GCM so that whoever holds the page can neither alter the
// token nor read the clearing price, the user id or the predictions inside it.
//
// Spelling: v2.<key id: 8 lowercase hex>.<base64url, unpadded: salt(16) | ciphertext | tag(16)>.
// Exactly one byte string is accepted per token: the body must be canonical base64url (re-encoding
// the decoded bytes gives the same text back), so other padding, other trailing bits or characters
// outside the alphabet are refused before any decryption is tried.
//
// Nonces: random 96-bit GCM nonces would wear a busy key out after about 2^32 tokens. Instead each
// process seals under its own key, HMAC-SHA256(secret, epoch) for a random 64-bit epoch drawn at
// start, with a counter as the nonce (started at a random point): a nonce never repeats under one
// process key, and two processes share a key only if their epochs collide. The token's salt is
// epoch | counter, so any replica holding the secret derives the key again.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

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
  /** Served to test traffic: its events are verified and answered, never billed. */
  test?: boolean;
}

const version = 'v2';
const epochBytes = 8;
const saltBytes = 16;
const tagBytes = 16;
/** Process keys of other epochs (other replicas, earlier runs) remembered once a token of theirs opened. */
const openedEpochsKept = 1024;

/** AES-256-GCM under one key: writes the ciphertext of `plaintext`, then its 16-byte tag, at the start of `out`; returns their length. */
export interface GcmSealer {
  seal(nonce: Buffer, aad: Buffer, plaintext: Buffer, out: Buffer): number;
}

/** Makes the sealer of a 32-byte key. */
export type GcmSealerOf = (key: Buffer) => GcmSealer;

/**
 * node:crypto's AES-256-GCM: a new cipher object per message, about 6 µs a token. The daemon
 * passes the addon's GcmSealer instead (a keyed OpenSSL context, under a microsecond); both write
 * the same bytes, and tokens of either open with verifyEventToken.
 */
export const nodeGcmSealerOf: GcmSealerOf = (key) => ({
  seal(nonce, aad, plaintext, out) {
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: tagBytes });
    cipher.setAAD(aad);
    let length = cipher.update(plaintext).copy(out);
    length += cipher.final().copy(out, length);
    return length + cipher.getAuthTag().copy(out, length);
  },
});

/**
 * A configured secret and this process's sealing state. Owned by the JS thread. Its id is a short
 * hash of the secret, so rotating the secret changes it.
 */
export class SigningKey {
  readonly id: string;
  private header: { id: string; text: string; bytes: Buffer } | undefined;
  private readonly epoch = randomBytes(epochBytes);
  private readonly epochKey: Buffer;
  private readonly sealer: GcmSealer;
  /** The next token's GCM nonce, rewritten per token (sealers copy it). */
  private readonly nonce = Buffer.alloc(12);
  private counter = randomBytes(8).readBigUInt64BE() >> 1n;
  private readonly openedEpochKeys = new Map<string, Buffer>();

  constructor(
    readonly secret: Buffer,
    sealerOf: GcmSealerOf = nodeGcmSealerOf,
  ) {
    this.id = createHash('sha256').update(secret).digest('hex').slice(0, 8);
    this.epochKey = this.keyOfEpoch(this.epoch);
    this.sealer = sealerOf(this.epochKey);
  }

  /** The token's `v2.<key id>` prefix, which is also its GCM additional data, made once per id. */
  sealingHeader(): { text: string; bytes: Buffer } {
    if (this.header?.id !== this.id) this.header = { id: this.id, text: `${version}.${this.id}`, bytes: Buffer.from(`${version}.${this.id}`) };
    return this.header;
  }

  /**
   * Seals `plaintext` under the next salt (epoch | counter) with `aad`: writes salt | ciphertext |
   * tag at the start of `sealed` and returns their length.
   */
  seal(aad: Buffer, plaintext: Buffer, sealed: Buffer): number {
    this.epoch.copy(sealed, 0);
    sealed.writeBigUInt64BE(this.counter, epochBytes);
    sealed.copy(this.nonce, 4, epochBytes, saltBytes);
    this.counter = (this.counter + 1n) & 0xffff_ffff_ffff_ffffn;
    return saltBytes + this.sealer.seal(this.nonce, aad, plaintext, sealed.subarray(saltBytes));
  }

  /** The key a salt names; `remember` once a token under it opened, so forged salts fill nothing. */
  keyOfSalt(salt: Buffer): Buffer {
    const epoch = salt.subarray(0, epochBytes);
    if (epoch.equals(this.epoch)) return this.epochKey;
    return this.openedEpochKeys.get(epoch.toString('latin1')) ?? this.keyOfEpoch(epoch);
  }

  remember(salt: Buffer, key: Buffer): void {
    if (key === this.epochKey) return;
    if (this.openedEpochKeys.size >= openedEpochsKept) this.openedEpochKeys.clear();
    this.openedEpochKeys.set(salt.subarray(0, epochBytes).toString('latin1'), key);
  }

  private keyOfEpoch(epoch: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(epoch).digest();
  }
}

export function signingKeyOf(secret: Buffer, sealerOf?: GcmSealerOf): SigningKey {
  return new SigningKey(secret, sealerOf);
}

const tokenPattern = /^v2\.([0-9a-f]{8})\.([A-Za-z0-9_-]+)$/;
/** Longest accepted token: far above any token this server writes, far below what could cost real work. */
export const maxEventTokenLength = 2048;

/** The GCM nonce of a salt: its counter, zero-padded to 96 bits. */
function nonceOf(salt: Buffer): Buffer {
  const nonce = Buffer.alloc(12);
  salt.copy(nonce, 4, epochBytes, saltBytes);
  return nonce;
}

// Sealing's working buffers, rewritten per token: the JS thread seals one token at a time.
/** Room for the contents of any token whose fields fit maxEventTokenLength; longer ones get their own buffer. */
const plaintextScratch = Buffer.allocUnsafe(3 * maxEventTokenLength);
const sealedScratch = Buffer.allocUnsafe(saltBytes + plaintextScratch.length + tagBytes);

export function signEventToken(fields: EventTokenFields, key: SigningKey): string {
  const pCtr = Math.round(fields.pCtr * 1e6) / 1e6;
  const pCvr = Math.round(fields.pCvr * 1e6) / 1e6;
  const { requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, placement, modelVersion } = fields;
  const contents = JSON.stringify(
    // Only test traffic carries the flag, so other tokens keep the twelve fields tokens always had.
    fields.test
      ? [requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, pCtr, pCvr, placement, modelVersion, 1]
      : [requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, pCtr, pCvr, placement, modelVersion],
  );
  // UTF-8 takes at most three bytes per UTF-16 unit, so a string this short always fits the scratch.
  const plaintext =
    contents.length <= maxEventTokenLength ? plaintextScratch.subarray(0, plaintextScratch.write(contents, 'utf8')) : Buffer.from(contents, 'utf8');
  const sealed = saltBytes + plaintext.length + tagBytes <= sealedScratch.length ? sealedScratch : Buffer.allocUnsafe(saltBytes + plaintext.length + tagBytes);
  const header = key.sealingHeader();
  const length = key.seal(header.bytes, plaintext, sealed);
  return `${header.text}.${sealed.toString('base64url', 0, length)}`;
}

export class EventTokenError extends Error {}

type TokenTuple = [string, string, number, number, number, number, number, string, number, number, string, string];

function fieldsOf(plaintext: Buffer): EventTokenFields {
  // The contents were sealed by this server, so a shape error means a bug or a leaked key; refuse either way.
  let tuple: unknown;
  try {
    tuple = JSON.parse(plaintext.toString('utf8'));
  } catch {
    throw new EventTokenError('event token contents are not readable');
  }
  const kinds = ['string', 'string', 'number', 'number', 'number', 'number', 'number', 'string', 'number', 'number', 'string', 'string'];
  const testFlagged = Array.isArray(tuple) && tuple.length === kinds.length + 1 && tuple[kinds.length] === 1;
  if (!Array.isArray(tuple) || (tuple.length !== kinds.length && !testFlagged) || kinds.some((kind, i) => typeof tuple[i] !== kind)) {
    throw new EventTokenError('event token contents are not readable');
  }
  const [requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, pCtr, pCvr, placement, modelVersion] = tuple as TokenTuple;
  return {
    requestId,
    adId,
    slot,
    bidType,
    priceMicros,
    issuedMs,
    expiresMs,
    userId,
    pCtr,
    pCvr,
    placement,
    modelVersion,
    ...(testFlagged ? { test: true } : {}),
  };
}

/**
 * Opens a token sealed by any key still held (the current one first, then those rotated out but
 * still inside the token lifetime) and checks its expiry; returns the frozen auction fields.
 */
export function verifyEventToken(token: string, keys: readonly SigningKey[], nowMs: number): EventTokenFields {
  if (token.length > maxEventTokenLength) throw new EventTokenError(`event token is longer than ${maxEventTokenLength} characters`);
  const match = tokenPattern.exec(token);
  if (!match) throw new EventTokenError('malformed event token');
  const [, keyId, body] = match as unknown as [string, string, string];
  const sealed = Buffer.from(body, 'base64url');
  if (sealed.toString('base64url') !== body) throw new EventTokenError('event token is not in its canonical base64url spelling');
  if (sealed.length <= saltBytes + tagBytes) throw new EventTokenError('malformed event token');
  const key = keys.find((candidate) => candidate.id === keyId);
  if (!key) throw new EventTokenError(`event token sealed with unknown key ${JSON.stringify(keyId)}`);
  const salt = sealed.subarray(0, saltBytes);
  const openingKey = key.keyOfSalt(salt);
  const decipher = createDecipheriv('aes-256-gcm', openingKey, nonceOf(salt), { authTagLength: tagBytes });
  decipher.setAAD(Buffer.from(`${version}.${keyId}`));
  decipher.setAuthTag(sealed.subarray(sealed.length - tagBytes));
  let plaintext: Buffer;
  try {
    plaintext = Buffer.concat([decipher.update(sealed.subarray(saltBytes, sealed.length - tagBytes)), decipher.final()]);
  } catch {
    throw new EventTokenError('event token signature does not match');
  }
  key.remember(salt, openingKey);
  const fields = fieldsOf(plaintext);
  if (nowMs > fields.expiresMs) throw new EventTokenError('event token has expired');
  return fields;
}

/**
 * The served ad a token names, from its verified contents: every event of one served ad maps to
 * this key whatever bytes carried the token. The issue time tells apart two requests that reused
 * one request id.
 */
export function servedAdKey(fields: EventTokenFields): string {
  return createHash('sha256')
    .update(JSON.stringify([fields.requestId, fields.adId, fields.slot, fields.issuedMs]))
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}
