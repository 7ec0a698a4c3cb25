// IAB privacy strings built bit by bit, for the tests of src/pipeline/privacy.ts: TCF v2 core
// segments, GPP headers and US National sections, each field at the bit offset its spec gives.
export const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Fields as [value, width in bits], written most significant bit first and padded with zeros to whole base64url characters. */
export function base64UrlOfFields(fields: Array<[number, number]>): string {
  return base64UrlOfBits(fields.map(([value, width]) => value.toString(2).padStart(width, '0')).join(''));
}

function base64UrlOfBits(bits: string): string {
  const padded = bits.padEnd(Math.ceil(bits.length / 6) * 6, '0');
  let out = '';
  for (let i = 0; i < padded.length; i += 6) out += alphabet[parseInt(padded.slice(i, i + 6), 2)];
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
export function tcfString(purposesConsent: readonly number[], options: { version?: number; vendors?: number } = {}): string {
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
export function gppHeader(sectionIds: number[]): string {
  let last = 0;
  const entries = sectionIds.map((id) => {
    const code = `0${fibonacciBits(id - last)}`;
    last = id;
    return code;
  });
  return base64UrlOfBits(['000011', '000001', sectionIds.length.toString(2).padStart(12, '0'), ...entries].join(''));
}

/**
 * A US National (usnat, section 7) core segment: Version 6, then 2-bit fields SharingNotice,
 * SaleOptOutNotice, SharingOptOutNotice, TargetedAdvertisingOptOutNotice,
 * SensitiveDataProcessingOptOutNotice, SensitiveDataLimitUseNotice (bits 6-17), SaleOptOut (18),
 * SharingOptOut (20), TargetedAdvertisingOptOut (22), then SensitiveDataProcessing 12 x 2,
 * KnownChildSensitiveDataConsents 2 x 2, PersonalDataConsents 2, MspaCoveredTransaction 2,
 * MspaOptOutOptionMode 2, MspaServiceProviderMode 2. Opt-outs: 1 opted out, 2 did not.
 */
export function usNational(optOuts: { sale?: number; sharing?: number; targeted?: number }, version = 1): string {
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
