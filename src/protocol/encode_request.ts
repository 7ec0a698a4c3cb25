// Client side of the protocol: builds AdRequest FlatBuffers and reads AdResponses, as an ad server
// calling adserve would. Used by the tests and the benchmarks.
import { Builder, ByteBuffer } from 'flatbuffers';

import { AdRequest, AdResponse, Placement, User } from './schema';

export interface AdRequestSpec {
  id?: string;
  placement?: Placement;
  slots?: number;
  floorCpmMicros?: bigint;
  tmaxMs?: number;
  query?: string;
  userId?: string;
  debug?: boolean;
}

export function encodeAdRequest(spec: AdRequestSpec = {}): Uint8Array {
  const builder = new Builder(256);
  const id = builder.createString(spec.id ?? 'req-1');
  const query = spec.query === undefined ? 0 : builder.createString(spec.query);
  let user = 0;
  if (spec.userId !== undefined) {
    const userId = builder.createString(spec.userId);
    User.startUser(builder);
    User.addId(builder, userId);
    user = User.endUser(builder);
  }
  AdRequest.startAdRequest(builder);
  AdRequest.addId(builder, id);
  AdRequest.addPlacement(builder, spec.placement ?? Placement.Search);
  if (spec.slots !== undefined) AdRequest.addSlots(builder, spec.slots);
  if (spec.floorCpmMicros !== undefined) AdRequest.addFloorCpmMicros(builder, spec.floorCpmMicros);
  if (spec.tmaxMs !== undefined) AdRequest.addTmaxMs(builder, spec.tmaxMs);
  if (query !== 0) AdRequest.addQuery(builder, query);
  if (user !== 0) AdRequest.addUser(builder, user);
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
