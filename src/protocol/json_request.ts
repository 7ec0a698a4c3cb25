// The JSON form of an AdRequest, for curl, debugging and docs: field names exactly as in
// schemas/ad_request.fbs, enums by their schema names. It is built into the same FlatBuffer the
// binary path receives, so both forms take the one decision path (Verifier included). One table
// below lists every field of each request table; a schema field without an entry fails
// test/protocol/json_mapping.test.ts.
import { Builder } from 'flatbuffers';

import { AdRequest, AuctionType, Device, DeviceType, Gender, Geo, Placement, Regs, User } from './schema';

/**
 * Longest string and longest list a JSON request may hold. The binary path is bounded by
 * maxBodyBytes alone; a JSON body is typed by people, and a value past these is a mistake (a
 * pasted document) better refused with its field named than decided on.
 */
export const maxJsonStringLength = 1024;
export const maxJsonListLength = 1024;
/** Consent and GPP strings carry vendor sections and run to kilobytes; the privacy decoder reads at most 16 KiB. */
const maxPrivacyStringLength = 16 * 1024;

/** A JSON body this form cannot take: 400 when it is not JSON, 422 with the field at fault otherwise. */
export class JsonRequestError extends Error {
  constructor(
    readonly status: 400 | 422,
    message: string,
    /** The JSON path of the field at fault (`user.segments[2]`), when one is. */
    readonly field?: string,
  ) {
    super(message);
  }
}

type Add<T> = (builder: Builder, value: T) => void;

type FieldMapping =
  | { kind: 'string'; maxLength: number; add: Add<number> }
  | { kind: 'strings'; create: (builder: Builder, offsets: number[]) => number; add: Add<number> }
  | { kind: 'table'; table: TableMapping; add: Add<number> }
  | { kind: 'ushorts'; create: (builder: Builder, values: number[]) => number; add: Add<number> }
  | { kind: 'bool'; add: Add<boolean> }
  | { kind: 'integer'; min: number; max: number; add: Add<number> }
  /** A 64-bit field: JSON numbers are doubles, so only safe integers are exact. */
  | { kind: 'long'; min: number; add: Add<bigint> }
  | { kind: 'enum'; names: Record<string, string | number>; add: Add<number> };

export interface TableMapping {
  /** The table's name in the schema, for messages. */
  name: string;
  start(builder: Builder): void;
  end(builder: Builder): number;
  /** Every field of the table, by its schema name. */
  fields: Record<string, FieldMapping>;
  /** Fields the schema marks `(required)`. */
  required: readonly string[];
}

const text = (add: Add<number>, maxLength = maxJsonStringLength): FieldMapping => ({ kind: 'string', maxLength, add });
const ushorts = (create: (builder: Builder, values: number[]) => number, add: Add<number>): FieldMapping => ({ kind: 'ushorts', create, add });
const texts = (create: (builder: Builder, offsets: number[]) => number, add: Add<number>): FieldMapping => ({ kind: 'strings', create, add });
const flag = (add: Add<boolean>): FieldMapping => ({ kind: 'bool', add });
const ushort = (add: Add<number>): FieldMapping => ({ kind: 'integer', min: 0, max: 0xffff, add });
const short = (add: Add<number>): FieldMapping => ({ kind: 'integer', min: -0x8000, max: 0x7fff, add });
const uint = (add: Add<number>): FieldMapping => ({ kind: 'integer', min: 0, max: 0xffff_ffff, add });
const long = (add: Add<bigint>): FieldMapping => ({ kind: 'long', min: Number.MIN_SAFE_INTEGER, add });
const ulong = (add: Add<bigint>): FieldMapping => ({ kind: 'long', min: 0, add });
const named = (names: Record<string, string | number>, add: Add<number>): FieldMapping => ({ kind: 'enum', names, add });
const table = (mapping: TableMapping, add: Add<number>): FieldMapping => ({ kind: 'table', table: mapping, add });

const userMapping: TableMapping = {
  name: 'User',
  start: User.startUser,
  end: User.endUser,
  required: [],
  fields: {
    id: text(User.addId),
    yob: ushort(User.addYob),
    gender: named(Gender, User.addGender),
    segments: texts(User.createSegmentsVector, User.addSegments),
    consent: text(User.addConsent, maxPrivacyStringLength),
  },
};

const regsMapping: TableMapping = {
  name: 'Regs',
  start: Regs.startRegs,
  end: Regs.endRegs,
  required: [],
  fields: {
    coppa: flag(Regs.addCoppa),
    gdpr: flag(Regs.addGdpr),
    us_privacy: text(Regs.addUsPrivacy),
    gpp: text(Regs.addGpp, maxPrivacyStringLength),
    gpp_sid: ushorts(Regs.createGppSidVector, Regs.addGppSid),
  },
};

const deviceMapping: TableMapping = {
  name: 'Device',
  start: Device.startDevice,
  end: Device.endDevice,
  required: [],
  fields: { type: named(DeviceType, Device.addType), os: text(Device.addOs), language: text(Device.addLanguage) },
};

const geoMapping: TableMapping = {
  name: 'Geo',
  start: Geo.startGeo,
  end: Geo.endGeo,
  required: [],
  fields: { country: text(Geo.addCountry), region: text(Geo.addRegion), city: text(Geo.addCity), zip: text(Geo.addZip) },
};

export const adRequestMapping: TableMapping = {
  name: 'AdRequest',
  start: AdRequest.startAdRequest,
  end: AdRequest.endAdRequest,
  required: ['id'],
  fields: {
    id: text(AdRequest.addId),
    placement: named(Placement, AdRequest.addPlacement),
    tmax_ms: uint(AdRequest.addTmaxMs),
    user: table(userMapping, AdRequest.addUser),
    device: table(deviceMapping, AdRequest.addDevice),
    geo: table(geoMapping, AdRequest.addGeo),
    query: text(AdRequest.addQuery),
    product_id: text(AdRequest.addProductId),
    category_id: text(AdRequest.addCategoryId),
    slots: ushort(AdRequest.addSlots),
    floor_cpm_micros: long(AdRequest.addFloorCpmMicros),
    auction_type: named(AuctionType, AdRequest.addAuctionType),
    blocked_advertisers: texts(AdRequest.createBlockedAdvertisersVector, AdRequest.addBlockedAdvertisers),
    blocked_categories: texts(AdRequest.createBlockedCategoriesVector, AdRequest.addBlockedCategories),
    blocked_products: texts(AdRequest.createBlockedProductsVector, AdRequest.addBlockedProducts),
    debug: flag(AdRequest.addDebug),
    test: flag(AdRequest.addTest),
    timestamp_ms: ulong(AdRequest.addTimestampMs),
    utc_offset_minutes: short(AdRequest.addUtcOffsetMinutes),
    session_id: text(AdRequest.addSessionId),
    page: ushort(AdRequest.addPage),
    cur: texts(AdRequest.createCurVector, AdRequest.addCur),
    regs: table(regsMapping, AdRequest.addRegs),
  },
};

/** Every request table the JSON form maps, by schema name. */
export const requestMappings: readonly TableMapping[] = [adRequestMapping, userMapping, deviceMapping, geoMapping, regsMapping];

const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalid(field: string, message: string): JsonRequestError {
  return new JsonRequestError(422, `${field} ${message}`, field);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function createText(builder: Builder, value: unknown, field: string, maxLength = maxJsonStringLength): number {
  if (typeof value !== 'string') throw invalid(field, 'must be a string');
  if (value.length > maxLength) throw invalid(field, `must be at most ${maxLength} characters (got ${value.length})`);
  return builder.createString(value);
}

/** Checks `value` against `mapping` and returns what adds it to the table once the table has begun (offsets are made before). */
function prepareField(builder: Builder, mapping: FieldMapping, value: unknown, field: string): (builder: Builder) => void {
  switch (mapping.kind) {
    case 'string': {
      const offset = createText(builder, value, field, mapping.maxLength);
      return (b) => mapping.add(b, offset);
    }
    case 'ushorts': {
      if (!Array.isArray(value) || value.length > maxJsonListLength) throw invalid(field, `must be a list of at most ${maxJsonListLength} integers`);
      value.forEach((each, i) => {
        if (typeof each !== 'number' || !Number.isInteger(each) || each < 0 || each > 0xffff) throw invalid(`${field}[${i}]`, 'must be an integer in 0..65535');
      });
      const vector = mapping.create(builder, value as number[]);
      return (b) => mapping.add(b, vector);
    }
    case 'strings': {
      if (!Array.isArray(value)) throw invalid(field, 'must be a list of strings');
      if (value.length > maxJsonListLength) throw invalid(field, `must hold at most ${maxJsonListLength} strings (got ${value.length})`);
      const offsets = value.map((each, i) => createText(builder, each, `${field}[${i}]`));
      const vector = mapping.create(builder, offsets);
      return (b) => mapping.add(b, vector);
    }
    case 'table': {
      const offset = encodeTable(builder, mapping.table, value, field);
      return (b) => mapping.add(b, offset);
    }
    case 'bool':
      if (typeof value !== 'boolean') throw invalid(field, 'must be true or false');
      return (b) => mapping.add(b, value);
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < mapping.min || value > mapping.max) {
        throw invalid(field, `must be an integer in ${mapping.min}..${mapping.max}`);
      }
      return (b) => mapping.add(b, value);
    case 'long':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < mapping.min) {
        throw invalid(field, `must be an integer in ${mapping.min}..${Number.MAX_SAFE_INTEGER}`);
      }
      return (b) => mapping.add(b, BigInt(value));
    case 'enum': {
      const number = typeof value === 'string' && Object.hasOwn(mapping.names, value) ? mapping.names[value] : undefined;
      if (typeof number !== 'number') {
        const names = Object.keys(mapping.names).filter((name) => typeof mapping.names[name] === 'number');
        throw invalid(field, `must be one of ${names.join(', ')}`);
      }
      return (b) => mapping.add(b, number);
    }
  }
}

function encodeTable(builder: Builder, mapping: TableMapping, json: unknown, path: string): number {
  if (!isObject(json)) throw invalid(path, `must be an object (a ${mapping.name})`);
  const fieldPath = (name: string): string => (path === '' ? name : `${path}.${name}`);
  for (const name of Object.keys(json)) {
    if (!Object.hasOwn(mapping.fields, name)) throw invalid(fieldPath(name), `is not a field of ${mapping.name}`);
  }
  for (const name of mapping.required) if (json[name] === undefined) throw invalid(fieldPath(name), 'is required');
  const adds: Array<(b: Builder) => void> = [];
  for (const [name, field] of Object.entries(mapping.fields)) {
    if (Object.hasOwn(json, name)) adds.push(prepareField(builder, field, json[name], fieldPath(name)));
  }
  mapping.start(builder);
  for (const add of adds) add(builder);
  return mapping.end(builder);
}

/**
 * The AdRequest FlatBuffer of a JSON body. 400 for a body that is not UTF-8 JSON; 422 naming the
 * field (`user.segments[2]`) for an unknown field, a wrong type, an integer outside its type's
 * range, an enum name the schema lacks, or a string or list over its limit.
 */
export function adRequestFromJson(body: Uint8Array): Uint8Array {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(body));
  } catch {
    throw new JsonRequestError(400, 'body is not valid UTF-8 JSON');
  }
  if (!isObject(json)) throw new JsonRequestError(422, 'the body must be a JSON object (an AdRequest)');
  const builder = new Builder(512);
  AdRequest.finishAdRequestBuffer(builder, encodeTable(builder, adRequestMapping, json, ''));
  return builder.asUint8Array().slice();
}
