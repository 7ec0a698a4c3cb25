// Builds wire-format AdRequests with the generated TypeScript code, as a caller would.
import { Builder, ByteBuffer } from 'flatbuffers';

import { AdRequest, AdResponse, Placement, User } from '../../src/protocol/schema';

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

export function buildAdRequest(spec: AdRequestSpec = {}): Uint8Array {
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
  const request = AdRequest.endAdRequest(builder);
  builder.finish(request, 'ADRQ');
  return builder.asUint8Array().slice();
}

/** Reads an AdResponse after checking its file identifier. */
export function readAdResponse(bytes: Uint8Array): AdResponse {
  const buffer = new ByteBuffer(bytes);
  if (!AdResponse.bufferHasIdentifier(buffer)) throw new Error('response is not an AdResponse (identifier ADRS missing)');
  return AdResponse.getRootAsAdResponse(buffer);
}

export async function postAd(url: string, body: Uint8Array, contentType = 'application/x-flatbuffers'): Promise<Response> {
  return fetch(`${url}/v1/ads`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
}
