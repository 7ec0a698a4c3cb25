// Part of stage "parse": whether a request may be personalised, decided once from its privacy
// signals (OpenRTB 2.6 regs and user.consent); docs/privacy.md says what each signal does. Every
// byte is the caller's: strings are read as bytes, at most maxSignalBytes of them, and a string
// that cannot be read refuses personalisation rather than raising an error.
import { Encoding } from 'flatbuffers';

import type { AdRequest } from '../protocol/schema';

/** Longest privacy string decoded; a TCF string with a full vendor bit field stays far below it. */
const maxSignalBytes = 16_384;

/** TCF v2 core segment (IAB "TC String" format, v2.2), bit offsets from its first bit. */
const tcf = { versionOffset: 0, versionBits: 6, version: 2, purposesConsentOffset: 152, purposesConsentBits: 24 } as const;
/** Store or access information on a device (1), create (3) and use (4) a personalised ads profile. */
const personalisedAdPurposes = [1, 3, 4] as const;

/** GPP (IAB Global Privacy Platform v1) header and the US sections read; docs/privacy.md lists them. */
const gpp = { type: 3, usPrivacySection: 6, usNationalSection: 7, maxFibonacciBits: 32 } as const;
/** US National core segment: 2-bit opt-out fields (1 = opted out) at these bit offsets, the same in versions 1 and 2. */
const usNational = { versions: [1, 2], saleOptOut: 18, sharingOptOut: 20, targetedAdvertisingOptOut: 22, optedOut: 1 } as const;

const base64UrlValue = (() => {
  const values = new Int8Array(128).fill(-1);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < alphabet.length; i++) values[alphabet.charCodeAt(i)] = i;
  return values;
})();

const [equals, dot, tilde] = ['=', '.', '~'].map((c) => c.charCodeAt(0)) as [number, number, number];

/** A base64url string's bits, most significant first (the bit order of the IAB strings). */
class Bits {
  private constructor(private readonly sextets: Uint8Array) {}

  /** Undefined when a byte is outside the base64url alphabet; trailing '=' padding is tolerated. */
  static of(bytes: Uint8Array): Bits | undefined {
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === equals) end--;
    const sextets = new Uint8Array(end);
    for (let i = 0; i < end; i++) {
      const value = base64UrlValue[bytes[i]!] ?? -1;
      if (value < 0) return undefined;
      sextets[i] = value;
    }
    return new Bits(sextets);
  }

  get length(): number {
    return this.sextets.length * 6;
  }

  /** The unsigned integer in bits [offset, offset + width), width at most 32; -1 past the end. */
  read(offset: number, width: number): number {
    if (offset < 0 || width > 32 || offset + width > this.length) return -1;
    let value = 0;
    for (let bit = offset; bit < offset + width; bit++) value = value * 2 + ((this.sextets[Math.floor(bit / 6)]! >> (5 - (bit % 6))) & 1);
    return value;
  }
}

/** `bytes` cut at each `separator`, as views. */
function split(bytes: Uint8Array, separator: number): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === separator) {
      parts.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

/** The first segment of a '.'-separated IAB string, decoded; undefined when it is too long or not base64url. */
function coreSegment(bytes: Uint8Array): Bits | undefined {
  if (bytes.length > maxSignalBytes) return undefined;
  return Bits.of(split(bytes, dot)[0]!);
}

/** Whether a TCF v2 consent string grants purposes 1, 3 and 4 (personalised ads); false when it cannot be read. */
export function tcfConsentsToPersonalisedAds(consent: Uint8Array | null): boolean {
  const core = consent ? coreSegment(consent) : undefined;
  if (!core || core.read(tcf.versionOffset, tcf.versionBits) !== tcf.version) return false;
  if (core.length < tcf.purposesConsentOffset + tcf.purposesConsentBits) return false;
  return personalisedAdPurposes.every((purpose) => core.read(tcf.purposesConsentOffset + purpose - 1, 1) === 1);
}

/**
 * Whether a US Privacy string ("1" + notice, opt-out of sale, LSPA, each Y, N or -) opts out of sale;
 * one that is not such a string counts as an opt-out.
 */
export function usPrivacyOptsOut(usPrivacy: Uint8Array): boolean {
  if (usPrivacy.length !== 4 || usPrivacy[0] !== '1'.charCodeAt(0)) return true;
  const flags = String.fromCharCode(usPrivacy[1]!, usPrivacy[2]!, usPrivacy[3]!).toUpperCase();
  if (!/^[YN-]{3}$/.test(flags)) return true;
  return flags[1] === 'Y';
}

/** A Fibonacci-coded integer (IAB GPP) from bit `offset`: [value, bits used], or undefined when unterminated. */
function fibonacci(bits: Bits, offset: number): [number, number] | undefined {
  let [weight, next] = [1, 2];
  let value = 0;
  let previous = 0;
  for (let used = 0; used < gpp.maxFibonacciBits; used++) {
    const bit = bits.read(offset + used, 1);
    if (bit < 0) return undefined;
    if (bit === 1 && previous === 1) return [value, used + 1];
    value += bit * weight;
    previous = bit;
    [weight, next] = [next, weight + next];
  }
  return undefined;
}

/** The section ids of a GPP header, in order; undefined when it is not a readable header of at most `limit` sections. */
function gppSectionIds(header: Bits, limit: number): number[] | undefined {
  if (header.read(0, 6) !== gpp.type) return undefined;
  const entries = header.read(12, 12);
  if (entries < 0) return undefined;
  const ids: number[] = [];
  let offset = 24;
  let last = 0;
  for (let entry = 0; entry < entries; entry++) {
    const isRange = header.read(offset++, 1);
    const start = fibonacci(header, offset);
    if (isRange < 0 || !start) return undefined;
    offset += start[1];
    let end = last + start[0];
    const first = end;
    if (isRange === 1) {
      const length = fibonacci(header, offset);
      if (!length) return undefined;
      offset += length[1];
      end = first + length[0];
    }
    if (ids.length + end - first + 1 > limit) return undefined;
    for (let id = first; id <= end; id++) ids.push(id);
    last = end;
  }
  return ids;
}

/** Whether a US National section's core segment records an opt-out of sale, sharing or targeted advertising; unreadable counts as one. */
function usNationalOptsOut(section: Uint8Array): boolean {
  const core = coreSegment(section);
  if (!core || !(usNational.versions as readonly number[]).includes(core.read(0, 6))) return true;
  const fields = [usNational.saleOptOut, usNational.sharingOptOut, usNational.targetedAdvertisingOptOut];
  return fields.some((offset) => {
    const value = core.read(offset, 2);
    return value < 0 || value === usNational.optedOut;
  });
}

/**
 * Whether a GPP string opts out in a US section this module reads (uspv1, usnat); other sections are
 * not read. A string whose header or read sections cannot be decoded counts as an opt-out.
 */
export function gppOptsOut(gppString: Uint8Array): boolean {
  if (gppString.length > maxSignalBytes) return true;
  const [headerBytes, ...sections] = split(gppString, tilde);
  const header = Bits.of(headerBytes!);
  const ids = header && gppSectionIds(header, sections.length);
  if (!ids || ids.length !== sections.length) return true;
  return ids.some(
    (id, i) => (id === gpp.usPrivacySection && usPrivacyOptsOut(sections[i]!)) || (id === gpp.usNationalSection && usNationalOptsOut(sections[i]!)),
  );
}

const bytesOf = (value: string | Uint8Array | null): Uint8Array | null => (value instanceof Uint8Array && value.length > 0 ? value : null);

/**
 * Personalised unless: COPPA applies; GDPR applies without a TCF v2 consent to purposes 1, 3 and 4;
 * the US Privacy string opts out of sale; or the GPP string opts out in a section read here.
 */
export function mayPersonalise(request: AdRequest): boolean {
  const regs = request.regs();
  if (!regs) return true;
  if (regs.coppa()) return false;
  if (regs.gdpr() && !tcfConsentsToPersonalisedAds(bytesOf(request.user()?.consent(Encoding.UTF8_BYTES) ?? null))) return false;
  const usPrivacy = bytesOf(regs.usPrivacy(Encoding.UTF8_BYTES));
  if (usPrivacy && usPrivacyOptsOut(usPrivacy)) return false;
  const gppString = bytesOf(regs.gpp(Encoding.UTF8_BYTES));
  return !(gppString && gppOptsOut(gppString));
}
