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
  /** The 64-bit counter as two unsigned 32-bit halves: a BigInt would allocate on every step. */
  private counterHigh: number;
  private counterLow: number;
  private readonly openedEpochKeys = new Map<string, Buffer>();

  /** `firstCounter`, the counter of the first token, is random unless given (tests pin it near a carry). */
  constructor(
    readonly secret: Buffer,
    sealerOf: GcmSealerOf = nodeGcmSealerOf,
    firstCounter: bigint = randomBytes(8).readBigUInt64BE() >> 1n,
  ) {
    this.id = createHash('sha256').update(secret).digest('hex').slice(0, 8);
    this.epochKey = this.keyOfEpoch(this.epoch);
    this.sealer = sealerOf(this.epochKey);
    this.counterHigh = Number(BigInt.asUintN(64, firstCounter) >> 32n);
    this.counterLow = Number(BigInt.asUintN(32, firstCounter));
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
    sealed.writeUInt32BE(this.counterHigh, epochBytes);
    sealed.writeUInt32BE(this.counterLow, epochBytes + 4);
    this.nonce.writeUInt32BE(this.counterHigh, 4);
    this.nonce.writeUInt32BE(this.counterLow, 8);
    if (this.counterLow === 0xffff_ffff) {
      this.counterLow = 0;
      this.counterHigh = this.counterHigh === 0xffff_ffff ? 0 : this.counterHigh + 1;
    } else {
      this.counterLow++;
    }
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

/**
 * Where one decision's token texts are written, one after another, so that no token becomes a JS
 * string on its way into the response. Each text stays valid until `reset`; when the space runs
 * out a larger one takes over and the texts already handed out keep the old one.
 */
export class TokenTexts {
  private bytes = Buffer.allocUnsafe(8 * 1024);
  private used = 0;

  reset(): void {
    this.used = 0;
  }

  /** `length` bytes of fresh space for one token's text. */
  take(length: number): Buffer {
    if (this.used + length > this.bytes.length) {
      this.bytes = Buffer.allocUnsafe(Math.max(2 * this.bytes.length, length));
      this.used = 0;
    }
    const text = this.bytes.subarray(this.used, this.used + length);
    this.used += length;
    return text;
  }
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

/**
 * The token's contents: JSON.stringify's text of the field tuple, the predictions rounded to six
 * decimals. Written by hand because JSON.stringify of an array costs about half a microsecond more
 * per token; a string that needs escaping (quotes, backslashes, control characters, surrogates)
 * goes through JSON.stringify, so the text is the same either way.
 */
function tokenContents(fields: EventTokenFields): string {
  const { requestId, adId, slot, bidType, priceMicros, issuedMs, expiresMs, userId, placement, modelVersion } = fields;
  const pCtr = Math.round(fields.pCtr * 1e6) / 1e6;
  const pCvr = Math.round(fields.pCvr * 1e6) / 1e6;
  // Only test traffic carries the flag, so other tokens keep the twelve fields tokens always had.
  const testFlag = fields.test ? ',1' : '';
  return `[${jsonString(requestId)},${jsonString(adId)},${jsonNumber(slot)},${jsonNumber(bidType)},${jsonNumber(priceMicros)},${jsonNumber(issuedMs)},${jsonNumber(expiresMs)},${jsonString(userId)},${jsonNumber(pCtr)},${jsonNumber(pCvr)},${jsonString(placement)},${jsonString(modelVersion)}${testFlag}]`;
}

function jsonString(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)) return JSON.stringify(text);
  }
  return `"${text}"`;
}

/** JSON's spelling of a number: String's for finite ones, null for the rest. */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? `${value}` : 'null';
}

/** Seals a token and writes its text (ASCII) into space taken from `texts`. */
export function sealEventToken(fields: EventTokenFields, key: SigningKey, texts: TokenTexts): Buffer {
  const contents = tokenContents(fields);
  // UTF-8 takes at most three bytes per UTF-16 unit, so a string this short always fits the scratch.
  const plaintext =
    contents.length <= maxEventTokenLength ? plaintextScratch.subarray(0, plaintextScratch.write(contents, 'utf8')) : Buffer.from(contents, 'utf8');
  const sealed = saltBytes + plaintext.length + tagBytes <= sealedScratch.length ? sealedScratch : Buffer.allocUnsafe(saltBytes + plaintext.length + tagBytes);
  const header = key.sealingHeader();
  const sealedLength = key.seal(header.bytes, plaintext, sealed);
  const text = texts.take(header.bytes.length + 1 + Math.ceil((sealedLength * 4) / 3));
  header.bytes.copy(text, 0);
  text[header.bytes.length] = dot;
  writeBase64url(sealed, sealedLength, text, header.bytes.length + 1);
  return text;
}

const ownTexts = new TokenTexts();

/** A sealed token as a string, for callers that hold tokens beyond one decision. */
export function signEventToken(fields: EventTokenFields, key: SigningKey): string {
  ownTexts.reset();
  return sealEventToken(fields, key, ownTexts).toString('latin1');
}

const dot = '.'.charCodeAt(0);
const base64urlDigits = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 'latin1');

/** Unpadded base64url of bytes[0, length) written from out[at]; the same text as Buffer's 'base64url'. */
function writeBase64url(bytes: Buffer, length: number, out: Buffer, at: number): void {
  let o = at;
  let i = 0;
  for (; i + 3 <= length; i += 3) {
    const triple = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = base64urlDigits[triple >>> 18]!;
    out[o++] = base64urlDigits[(triple >>> 12) & 63]!;
    out[o++] = base64urlDigits[(triple >>> 6) & 63]!;
    out[o++] = base64urlDigits[triple & 63]!;
  }
  if (i === length) return;
  const rest = (bytes[i]! << 16) | (i + 1 < length ? bytes[i + 1]! << 8 : 0);
  out[o++] = base64urlDigits[rest >>> 18]!;
  out[o++] = base64urlDigits[(rest >>> 12) & 63]!;
  if (i + 1 < length) out[o] = base64urlDigits[(rest >>> 6) & 63]!;
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
