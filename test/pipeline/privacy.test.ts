// The privacy policy on real IAB strings built here bit by bit (TCF v2 core segments, GPP headers
// and US sections), on hostile bytes, and on whole requests.
import { ByteBuffer } from 'flatbuffers';
import { describe, expect, it } from 'vitest';

import { type AdRequestSpec, encodeAdRequest } from '../../src/protocol/encode_request';
import { AdRequest } from '../../src/protocol/schema';
import { gppOptsOut, mayPersonalise, tcfConsentsToPersonalisedAds, usPrivacyOptsOut } from '../../src/pipeline/privacy';
import { seededRandom } from '../helpers/random';

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Fields as [value, width in bits], written most significant bit first and padded with zeros to whole base64url characters. */
function base64UrlOfFields(fields: Array<[number, number]>): string {
  let bits = fields.map(([value, width]) => value.toString(2).padStart(width, '0')).join('');
  bits = bits.padEnd(Math.ceil(bits.length / 6) * 6, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 6) out += alphabet[parseInt(bits.slice(i, i + 6), 2)];
  return out;
}

const bitField = (width: number, set: readonly number[]): [number, number] => [set.reduce((sum, n) => sum + 2 ** (width - n), 0), width];

/**
 * A TCF v2 core segment (IAB TC String v2.2), field by field with its bit offset:
 * Version 6 (0), Created 36 (6), LastUpdated 36 (42), CmpId 12 (78), CmpVersion 12 (90),
 * ConsentScreen 6 (102), ConsentLanguage 12 (108), VendorListVersion 12 (120), TcfPolicyVersion 6
 * (132), IsServiceSpecific 1 (138), UseNonStandardTexts 1 (139), SpecialFeatureOptIns 12 (140),
 * PurposesConsent 24 (152; purpose n at bit 151 + n), PurposesLITransparency 24 (176),
 * PurposeOneTreatment 1 (200), PublisherCC 12 (201), then the vendor consent section (MaxVendorId 16,
 * IsRangeEncoding 1, bit field), the vendor legitimate-interest section (the same) and
 * NumPubRestrictions 12.
 */
function tcfString(purposesConsent: readonly number[], options: { version?: number; vendors?: number } = {}): string {
  const deciseconds = Math.floor(Date.UTC(2026, 0, 15) / 100);
  const letters = (pair: string): number => (pair.charCodeAt(0) - 65) * 64 + (pair.charCodeAt(1) - 65);
  const vendors = options.vendors ?? 0;
  const allVendors = Array.from({ length: vendors }, (_, i) => i + 1);
  return base64UrlOfFields([
    [options.version ?? 2, 6],
    [deciseconds, 36],
    [deciseconds, 36],
    [7, 12],
    [1, 12],
    [1, 6],
    [letters('EN'), 12],
    [120, 12],
    [4, 6],
    [1, 1],
    [0, 1],
    [0, 12],
    bitField(24, purposesConsent),
    bitField(24, [2, 7]),
    [0, 1],
    [letters('DE'), 12],
    [vendors, 16],
    [0, 1],
    ...(vendors > 0 ? [bitField(vendors, allVendors)] : []),
    [0, 16],
    [0, 1],
    [0, 12],
  ]);
}

const allPurposes = Array.from({ length: 10 }, (_, i) => i + 1);

describe('TCF v2 consent strings', () => {
  it('grants personalised ads with purposes 1, 3 and 4, and a vendor section or an out-of-band segment after it', () => {
    expect(tcfConsentsToPersonalisedAds(bytes(tcfString(allPurposes)))).toBe(true);
    expect(tcfConsentsToPersonalisedAds(bytes(tcfString([1, 3, 4])))).toBe(true);
    expect(tcfConsentsToPersonalisedAds(bytes(tcfString([1, 3, 4], { vendors: 300 })))).toBe(true);
    expect(tcfConsentsToPersonalisedAds(bytes(`${tcfString(allPurposes)}.${base64UrlOfFields([[1, 3]])}`))).toBe(true);
  });

  it.each([
    ['purpose 1', [2, 3, 4, 5, 6, 7]],
    ['purpose 3', [1, 2, 4, 5, 6, 7]],
    ['purpose 4', [1, 2, 3, 5, 6, 7]],
    ['every purpose', []],
  ])('refuses a string without %s', (_, purposes) => {
    expect(tcfConsentsToPersonalisedAds(bytes(tcfString(purposes)))).toBe(false);
  });

  it('refuses TCF v1 and unknown versions', () => {
    expect(tcfConsentsToPersonalisedAds(bytes(tcfString(allPurposes, { version: 1 })))).toBe(false);
    expect(tcfConsentsToPersonalisedAds(bytes(tcfString(allPurposes, { version: 3 })))).toBe(false);
    // The IAB's own TCF v1.1 example string.
    expect(tcfConsentsToPersonalisedAds(bytes('BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA'))).toBe(false);
  });

  it('refuses malformed and hostile strings without throwing', () => {
    const valid = tcfString(allPurposes);
    const hostile = [
      '',
      valid.slice(0, 29), // ends before PurposesConsent does
      `${valid.slice(0, 10)}+${valid.slice(11)}`, // standard base64, not base64url
      `${valid.slice(0, 10)}=${valid.slice(11)}`,
      `${valid.slice(0, 10)}\u00e9${valid.slice(11)}`,
      `.${valid}`,
      '\u0000'.repeat(64),
      'A'.repeat(20_000) + valid,
      '~'.repeat(100),
    ];
    for (const text of hostile) expect(tcfConsentsToPersonalisedAds(bytes(text)), JSON.stringify(text.slice(0, 40))).toBe(false);
    expect(tcfConsentsToPersonalisedAds(null)).toBe(false);
    expect(tcfConsentsToPersonalisedAds(new Uint8Array([0xff, 0xfe, 0x80, 0x00]))).toBe(false);
  });
});

describe('US Privacy strings', () => {
  it('opts out exactly when the opt-out-of-sale character is Y, or the string is not a v1 string', () => {
    expect(usPrivacyOptsOut(bytes('1YYN'))).toBe(true);
    expect(usPrivacyOptsOut(bytes('1NYY'))).toBe(true);
    expect(usPrivacyOptsOut(bytes('1yyn'))).toBe(true);
    expect(usPrivacyOptsOut(bytes('1YNN'))).toBe(false);
    expect(usPrivacyOptsOut(bytes('1---'))).toBe(false);
    for (const text of ['1', '2YNN', '1YNNN', '1XNN', '1Y\u0000N', 'YNN1']) expect(usPrivacyOptsOut(bytes(text)), text).toBe(true);
  });
});

/** A Fibonacci code word (IAB GPP): the Zeckendorf digits of `value`, least significant first, then a closing 1. */
function fibonacciBits(value: number): string {
  const weights = [1, 2];
  while (weights[weights.length - 1]! <= value) weights.push(weights[weights.length - 1]! + weights[weights.length - 2]!);
  const digits = new Array<string>(weights.length).fill('0');
  let rest = value;
  for (let i = weights.length - 1; i >= 0; i--) {
    if (weights[i]! <= rest) {
      digits[i] = '1';
      rest -= weights[i]!;
    }
  }
  return `${digits.join('').replace(/0+$/, '')}1`;
}

/** A GPP v1 header: Type 6 bits (3), Version 6 (1), then the section ids as a Fibonacci range (NumEntries 12, each IsRange 1 + offset). */
function gppHeader(sectionIds: number[]): string {
  let last = 0;
  const entries = sectionIds.map((id) => {
    const code = `0${fibonacciBits(id - last)}`;
    last = id;
    return code;
  });
  let bits = ['000011', '000001', sectionIds.length.toString(2).padStart(12, '0'), ...entries].join('');
  bits = bits.padEnd(Math.ceil(bits.length / 6) * 6, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 6) out += alphabet[parseInt(bits.slice(i, i + 6), 2)];
  return out;
}

/**
 * A US National (usnat, section 7) core segment: Version 6, then 2-bit fields SharingNotice,
 * SaleOptOutNotice, SharingOptOutNotice, TargetedAdvertisingOptOutNotice,
 * SensitiveDataProcessingOptOutNotice, SensitiveDataLimitUseNotice (bits 6-17), SaleOptOut (18),
 * SharingOptOut (20), TargetedAdvertisingOptOut (22), then SensitiveDataProcessing 12 x 2,
 * KnownChildSensitiveDataConsents 2 x 2, PersonalDataConsents 2, MspaCoveredTransaction 2,
 * MspaOptOutOptionMode 2, MspaServiceProviderMode 2. Opt-outs: 1 opted out, 2 did not.
 */
function usNational(optOuts: { sale?: number; sharing?: number; targeted?: number }, version = 1): string {
  return base64UrlOfFields([
    [version, 6],
    ...Array.from({ length: 6 }, (): [number, number] => [1, 2]),
    [optOuts.sale ?? 2, 2],
    [optOuts.sharing ?? 2, 2],
    [optOuts.targeted ?? 2, 2],
    [0, 24],
    [0, 4],
    [0, 2],
    [1, 2],
    [2, 2],
    [1, 2],
  ]);
}

describe('GPP strings', () => {
  it('reads the IAB example headers: DBABMA is tcfeuv2 alone, DBACNY tcfeuv2 and uspv1', () => {
    // IAB encoders pad a header to more whole characters than it needs; the bits are the same.
    expect(gppHeader([2])).toBe('DBABM');
    expect(gppHeader([2, 6])).toBe('DBACNY');
    const tcf = tcfString(allPurposes);
    expect(gppOptsOut(bytes(`DBABMA~${tcf}`))).toBe(false);
    expect(gppOptsOut(bytes(`DBACNY~${tcf}~1YNN`))).toBe(false);
    expect(gppOptsOut(bytes(`DBACNY~${tcf}~1YYN`))).toBe(true);
  });

  it('honours an opt-out of sale, sharing or targeted advertising in a US National section', () => {
    expect(gppOptsOut(bytes(`${gppHeader([7])}~${usNational({})}`))).toBe(false);
    expect(gppOptsOut(bytes(`${gppHeader([7])}~${usNational({}, 2)}`))).toBe(false);
    expect(gppOptsOut(bytes(`${gppHeader([7])}~${usNational({ sale: 0, sharing: 0, targeted: 0 })}`))).toBe(false);
    for (const optOut of [{ sale: 1 }, { sharing: 1 }, { targeted: 1 }]) {
      expect(gppOptsOut(bytes(`${gppHeader([7])}~${usNational(optOut)}`)), JSON.stringify(optOut)).toBe(true);
      expect(gppOptsOut(bytes(`${gppHeader([2, 7])}~${tcfString(allPurposes)}~${usNational(optOut)}`)), JSON.stringify(optOut)).toBe(true);
    }
    // A sub-segment after the core (GPC) does not change what the core says.
    expect(gppOptsOut(bytes(`${gppHeader([7])}~${usNational({})}.${base64UrlOfFields([[1, 2], [1, 1]])}`))).toBe(false);
  });

  it('does not read sections other than uspv1 and usnat', () => {
    // usca (8) with bits that would read as opted out in a US National layout.
    expect(gppOptsOut(bytes(`${gppHeader([8])}~${usNational({ sale: 1 })}`))).toBe(false);
  });

  it('counts an unreadable header or a read section that cannot be decoded as an opt-out, without throwing', () => {
    const section = usNational({});
    const hostile = [
      `${gppHeader([7])}`, // one section named, none sent
      `${gppHeader([7])}~${section}~${section}`, // more sections than named
      `${gppHeader([7])}~${section.slice(0, 3)}`, // ends before TargetedAdvertisingOptOut
      `${gppHeader([7])}~${usNational({}, 3)}`,
      `${gppHeader([6])}~1Y`,
      `${gppHeader([7])}~+${section}`,
      `DBABMA`.replace('D', 'E'), // type 4
      `D${'/'.repeat(5)}~x`,
      'D' + 'A'.repeat(20_000),
      `DB${'_'.repeat(30)}~${section}`, // 4095 entries, ranges naming far more sections than sent
      '~~~~',
      '\u0000\u00ff',
    ];
    for (const text of hostile) expect(gppOptsOut(bytes(text)), JSON.stringify(text.slice(0, 40))).toBe(true);
  });

  it('answers random bytes without throwing', () => {
    const random = seededRandom(18);
    for (let i = 0; i < 2000; i++) {
      const noise = new Uint8Array(Math.floor(random() * 80));
      for (let j = 0; j < noise.length; j++) noise[j] = random() < 0.7 ? alphabet.charCodeAt(Math.floor(random() * 64)) : Math.floor(random() * 256);
      expect(typeof gppOptsOut(noise)).toBe('boolean');
      expect(typeof tcfConsentsToPersonalisedAds(noise)).toBe('boolean');
      expect(typeof usPrivacyOptsOut(noise)).toBe('boolean');
    }
  });
});

describe('the policy over a whole request', () => {
  const decide = (spec: AdRequestSpec): boolean => mayPersonalise(AdRequest.getRootAsAdRequest(new ByteBuffer(encodeAdRequest({ userId: 'u1', ...spec }))));
  const consent = tcfString(allPurposes);

  it.each<[string, AdRequestSpec, boolean]>([
    ['no regs', {}, true],
    ['regs with nothing set', { gdpr: false }, true],
    ['GDPR with consent', { gdpr: true, consent }, true],
    ['a consent string where GDPR does not apply', { consent: tcfString([]) }, true],
    ['GDPR without a consent string', { gdpr: true }, false],
    ['GDPR with an empty consent string', { gdpr: true, consent: '' }, false],
    ['GDPR with a consent string lacking purpose 4', { gdpr: true, consent: tcfString([1, 2, 3]) }, false],
    ['GDPR with a malformed consent string', { gdpr: true, consent: 'not a consent string' }, false],
    ['COPPA', { coppa: true }, false],
    ['COPPA with GDPR consent', { coppa: true, gdpr: true, consent }, false],
    ['a US Privacy opt-out of sale', { usPrivacy: '1YYN' }, false],
    ['a US Privacy string without opt-out', { usPrivacy: '1YNN' }, true],
    ['an empty US Privacy string', { usPrivacy: '' }, true],
    ['a GPP US National opt-out', { gpp: `${gppHeader([7])}~${usNational({ targeted: 1 })}`, gppSid: [7] }, false],
    ['a GPP string without opt-out', { gpp: `${gppHeader([7])}~${usNational({})}`, gppSid: [7] }, true],
    ['a malformed GPP string', { gpp: 'DBABMA' }, false],
  ])('%s: personalised %s', (_, spec, personalised) => {
    expect(decide(spec)).toBe(personalised);
  });
});
