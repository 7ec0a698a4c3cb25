// The privacy policy on real IAB strings built bit by bit (TCF v2 core segments, GPP headers and US
// sections; test/helpers/privacy.ts), on hostile bytes, and on whole requests.
import { ByteBuffer } from 'flatbuffers';
import { describe, expect, it } from 'vitest';

import { type AdRequestSpec, encodeAdRequest } from '../../src/protocol/encode_request';
import { AdRequest } from '../../src/protocol/schema';
import { gppOptsOut, mayPersonalise, tcfConsentsToPersonalisedAds, usPrivacyOptsOut } from '../../src/pipeline/privacy';
import { alphabet, base64UrlOfFields, gppHeader, tcfString, usNational } from '../helpers/privacy';
import { seededRandom } from '../helpers/random';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

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
    expect(
      gppOptsOut(
        bytes(
          `${gppHeader([7])}~${usNational({})}.${base64UrlOfFields([
            [1, 2],
            [1, 1],
          ])}`,
        ),
      ),
    ).toBe(false);
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
