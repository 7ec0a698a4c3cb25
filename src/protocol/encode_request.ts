// Client side of the protocol: builds AdRequest FlatBuffers and reads AdResponses, as an ad server
// calling adserve would. Used by the tests and the benchmarks.
import { Builder, ByteBuffer } from 'flatbuffers';

import { AdRequest, AdResponse, AuctionType, Device, DeviceType, Gender, Geo, Placement, Regs, User } from './schema';

export interface AdRequestSpec {
  id?: string;
  placement?: Placement;
  slots?: number;
  floorCpmMicros?: bigint;
  tmaxMs?: number;
  query?: string;
  userId?: string;
  debug?: boolean;
  yob?: number;
  gender?: Gender;
  country?: string;
  deviceType?: DeviceType;
  language?: string;
  categoryId?: string;
  productId?: string;
  timestampMs?: bigint;
  utcOffsetMinutes?: number;
  page?: number;
  blockedAdvertisers?: string[];
  blockedCategories?: string[];
  blockedProducts?: string[];
  segments?: string[];
  os?: string;
  region?: string;
  city?: string;
  zip?: string;
  auctionType?: AuctionType;
  test?: boolean;
  sessionId?: string;
  /** ISO 4217 currencies accepted (OpenRTB cur). */
  cur?: string[];
  /** TCF v2 consent string (OpenRTB user.consent). */
  consent?: string;
  /** Privacy regulation signals (OpenRTB regs); docs/privacy.md. */
  coppa?: boolean;
  gdpr?: boolean;
  usPrivacy?: string;
  gpp?: string;
  gppSid?: number[];
}

type StringVector = (values: string[] | undefined, create: (builder: Builder, offsets: number[]) => number) => number;

function encodeUser(builder: Builder, spec: AdRequestSpec, stringVector: StringVector): number {
  if (spec.userId === undefined && spec.yob === undefined && spec.gender === undefined && spec.segments === undefined && spec.consent === undefined) return 0;
  const userId = spec.userId === undefined ? 0 : builder.createString(spec.userId);
  const segments = stringVector(spec.segments, User.createSegmentsVector);
  const consent = spec.consent === undefined ? 0 : builder.createString(spec.consent);
  User.startUser(builder);
  if (userId !== 0) User.addId(builder, userId);
  if (spec.yob !== undefined) User.addYob(builder, spec.yob);
  if (spec.gender !== undefined) User.addGender(builder, spec.gender);
  if (segments !== 0) User.addSegments(builder, segments);
  if (consent !== 0) User.addConsent(builder, consent);
  return User.endUser(builder);
}

function encodeRegs(builder: Builder, spec: AdRequestSpec, optionalString: (value: string | undefined) => number): number {
  if (spec.coppa === undefined && spec.gdpr === undefined && spec.usPrivacy === undefined && spec.gpp === undefined && spec.gppSid === undefined) return 0;
  const usPrivacy = optionalString(spec.usPrivacy);
  const gpp = optionalString(spec.gpp);
  const gppSid = spec.gppSid === undefined ? 0 : Regs.createGppSidVector(builder, spec.gppSid);
  Regs.startRegs(builder);
  if (spec.coppa !== undefined) Regs.addCoppa(builder, spec.coppa);
  if (spec.gdpr !== undefined) Regs.addGdpr(builder, spec.gdpr);
  if (usPrivacy !== 0) Regs.addUsPrivacy(builder, usPrivacy);
  if (gpp !== 0) Regs.addGpp(builder, gpp);
  if (gppSid !== 0) Regs.addGppSid(builder, gppSid);
  return Regs.endRegs(builder);
}

function encodeGeo(builder: Builder, spec: AdRequestSpec, optionalString: (value: string | undefined) => number): number {
  if (spec.country === undefined && spec.region === undefined && spec.city === undefined && spec.zip === undefined) return 0;
  const [country, region, city, zip] = [spec.country, spec.region, spec.city, spec.zip].map(optionalString) as [number, number, number, number];
  Geo.startGeo(builder);
  if (country !== 0) Geo.addCountry(builder, country);
  if (region !== 0) Geo.addRegion(builder, region);
  if (city !== 0) Geo.addCity(builder, city);
  if (zip !== 0) Geo.addZip(builder, zip);
  return Geo.endGeo(builder);
}

function encodeDevice(builder: Builder, spec: AdRequestSpec, optionalString: (value: string | undefined) => number): number {
  if (spec.deviceType === undefined && spec.os === undefined && spec.language === undefined) return 0;
  const os = optionalString(spec.os);
  const language = optionalString(spec.language);
  Device.startDevice(builder);
  if (spec.deviceType !== undefined) Device.addType(builder, spec.deviceType);
  if (os !== 0) Device.addOs(builder, os);
  if (language !== 0) Device.addLanguage(builder, language);
  return Device.endDevice(builder);
}

export function encodeAdRequest(spec: AdRequestSpec = {}): Uint8Array {
  const builder = new Builder(256);
  const id = builder.createString(spec.id ?? 'req-1');
  const optionalString = (value: string | undefined): number => (value === undefined ? 0 : builder.createString(value));
  const stringVector: StringVector = (values, create) =>
    values === undefined
      ? 0
      : create(
          builder,
          values.map((value) => builder.createString(value)),
        );
  const query = optionalString(spec.query);
  const categoryId = optionalString(spec.categoryId);
  const productId = optionalString(spec.productId);
  const sessionId = optionalString(spec.sessionId);
  const user = encodeUser(builder, spec, stringVector);
  const geo = encodeGeo(builder, spec, optionalString);
  const device = encodeDevice(builder, spec, optionalString);
  const regs = encodeRegs(builder, spec, optionalString);
  const blockedAdvertisers = stringVector(spec.blockedAdvertisers, AdRequest.createBlockedAdvertisersVector);
  const blockedCategories = stringVector(spec.blockedCategories, AdRequest.createBlockedCategoriesVector);
  const blockedProducts = stringVector(spec.blockedProducts, AdRequest.createBlockedProductsVector);
  const cur = stringVector(spec.cur, AdRequest.createCurVector);
  AdRequest.startAdRequest(builder);
  AdRequest.addId(builder, id);
  AdRequest.addPlacement(builder, spec.placement ?? Placement.Search);
  if (spec.slots !== undefined) AdRequest.addSlots(builder, spec.slots);
  if (spec.floorCpmMicros !== undefined) AdRequest.addFloorCpmMicros(builder, spec.floorCpmMicros);
  if (spec.tmaxMs !== undefined) AdRequest.addTmaxMs(builder, spec.tmaxMs);
  if (query !== 0) AdRequest.addQuery(builder, query);
  if (user !== 0) AdRequest.addUser(builder, user);
  if (geo !== 0) AdRequest.addGeo(builder, geo);
  if (device !== 0) AdRequest.addDevice(builder, device);
  if (categoryId !== 0) AdRequest.addCategoryId(builder, categoryId);
  if (productId !== 0) AdRequest.addProductId(builder, productId);
  if (spec.timestampMs !== undefined) AdRequest.addTimestampMs(builder, spec.timestampMs);
  if (spec.utcOffsetMinutes !== undefined) AdRequest.addUtcOffsetMinutes(builder, spec.utcOffsetMinutes);
  if (spec.page !== undefined) AdRequest.addPage(builder, spec.page);
  if (blockedAdvertisers !== 0) AdRequest.addBlockedAdvertisers(builder, blockedAdvertisers);
  if (blockedCategories !== 0) AdRequest.addBlockedCategories(builder, blockedCategories);
  if (blockedProducts !== 0) AdRequest.addBlockedProducts(builder, blockedProducts);
  if (spec.debug) AdRequest.addDebug(builder, true);
  if (spec.test) AdRequest.addTest(builder, true);
  if (spec.auctionType !== undefined) AdRequest.addAuctionType(builder, spec.auctionType);
  if (sessionId !== 0) AdRequest.addSessionId(builder, sessionId);
  if (cur !== 0) AdRequest.addCur(builder, cur);
  if (regs !== 0) AdRequest.addRegs(builder, regs);
  AdRequest.finishAdRequestBuffer(builder, AdRequest.endAdRequest(builder));
  return builder.asUint8Array().slice();
}

/** Reads an AdResponse after checking its file identifier. Only for responses from adserve itself. */
export function decodeAdResponse(bytes: Uint8Array): AdResponse {
  const buffer = new ByteBuffer(bytes);
  if (!AdResponse.bufferHasIdentifier(buffer)) throw new Error('response is not an AdResponse (identifier ADRS missing)');
  return AdResponse.getRootAsAdResponse(buffer);
}
