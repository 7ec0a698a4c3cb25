// Client side of the protocol: builds AdRequest FlatBuffers and reads AdResponses, as an ad server
// calling adserve would. Used by the tests and the benchmarks.
import { Builder, ByteBuffer } from 'flatbuffers';

import { AdRequest, AdResponse, Device, DeviceType, Gender, Geo, Placement, User } from './schema';

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
}

function encodeUser(builder: Builder, spec: AdRequestSpec): number {
  if (spec.userId === undefined && spec.yob === undefined && spec.gender === undefined) return 0;
  const userId = spec.userId === undefined ? 0 : builder.createString(spec.userId);
  User.startUser(builder);
  if (userId !== 0) User.addId(builder, userId);
  if (spec.yob !== undefined) User.addYob(builder, spec.yob);
  if (spec.gender !== undefined) User.addGender(builder, spec.gender);
  return User.endUser(builder);
}

function encodeGeo(builder: Builder, spec: AdRequestSpec): number {
  if (spec.country === undefined) return 0;
  const country = builder.createString(spec.country);
  Geo.startGeo(builder);
  Geo.addCountry(builder, country);
  return Geo.endGeo(builder);
}

function encodeDevice(builder: Builder, spec: AdRequestSpec): number {
  if (spec.deviceType === undefined && spec.language === undefined) return 0;
  const language = spec.language === undefined ? 0 : builder.createString(spec.language);
  Device.startDevice(builder);
  if (spec.deviceType !== undefined) Device.addType(builder, spec.deviceType);
  if (language !== 0) Device.addLanguage(builder, language);
  return Device.endDevice(builder);
}

export function encodeAdRequest(spec: AdRequestSpec = {}): Uint8Array {
  const builder = new Builder(256);
  const id = builder.createString(spec.id ?? 'req-1');
  const optionalString = (value: string | undefined): number => (value === undefined ? 0 : builder.createString(value));
  const query = optionalString(spec.query);
  const categoryId = optionalString(spec.categoryId);
  const productId = optionalString(spec.productId);
  const user = encodeUser(builder, spec);
  const geo = encodeGeo(builder, spec);
  const device = encodeDevice(builder, spec);
  const stringVector = (values: string[] | undefined, create: (builder: Builder, offsets: number[]) => number): number =>
    values === undefined ? 0 : create(builder, values.map((value) => builder.createString(value)));
  const blockedAdvertisers = stringVector(spec.blockedAdvertisers, AdRequest.createBlockedAdvertisersVector);
  const blockedCategories = stringVector(spec.blockedCategories, AdRequest.createBlockedCategoriesVector);
  const blockedProducts = stringVector(spec.blockedProducts, AdRequest.createBlockedProductsVector);
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
  AdRequest.finishAdRequestBuffer(builder, AdRequest.endAdRequest(builder));
  return builder.asUint8Array().slice();
}

/** Reads an AdResponse after checking its file identifier. Only for responses from adserve itself. */
export function decodeAdResponse(bytes: Uint8Array): AdResponse {
  const buffer = new ByteBuffer(bytes);
  if (!AdResponse.bufferHasIdentifier(buffer)) throw new Error('response is not an AdResponse (identifier ADRS missing)');
  return AdResponse.getRootAsAdResponse(buffer);
}
