// Stage "parse": untrusted bytes -> a verified AdRequest view plus its validated scalars.
import { ByteBuffer } from 'flatbuffers';

import { addon, isNativeError } from '../engine/addon';
import { RequestError } from '../errors';
import { AdRequest, Placement } from '../protocol/schema';
import { mayPersonalise } from './privacy';

export type Micros = number;

export interface ParsedAdRequest {
  /** Zero-copy view over the verified bytes. */
  request: AdRequest;
  requestId: string;
  /**
   * '' for anonymous traffic and for requests that may not be personalised: no frequency history is
   * read or written for them and no event token or log line carries their user.
   */
  userId: string;
  /** The privacy signals allow personalisation (privacy.ts); when false the engine scores an anonymous user. */
  personalised: boolean;
  placement: Placement;
  slots: number;
  floorCpmMicros: Micros;
  /** Time budget for this decision after clamping, in milliseconds. */
  tmaxMs: number;
  debug: boolean;
  /** Test traffic (OpenRTB `test`): answered as any other request, its events never billed. */
  test: boolean;
}

export interface ParseLimits {
  defaultTmaxMs: number;
  maxTmaxMs: number;
  maxSlots: number;
  /** The account currency (ISO 4217), the only one prices are in. */
  currency: string;
}

const maxRequestIdLength = 128;

/**
 * Runs one of the addon's FlatBuffers verifiers; a refusal becomes a 400 with the verifier's reason.
 * Nothing may read untrusted bytes before this passes: there is no TS verifier.
 */
export function requireVerified(verify: (bytes: Uint8Array) => void, bytes: Uint8Array): void {
  try {
    verify(bytes);
  } catch (error) {
    if (isNativeError(error) && error.code === 'E_BAD_REQUEST') throw new RequestError(400, 'bad_request', error.message);
    throw error;
  }
}

/**
 * The id of a refused AdRequest, so a pipelining client can tell which request failed; '' when the
 * bytes fail the Verifier, since nothing in them can be trusted then.
 */
export function refusedRequestId(bytes: Uint8Array): string {
  try {
    requireVerified(addon.verifyAdRequest, bytes);
  } catch (error) {
    if (error instanceof RequestError) return '';
    throw error;
  }
  return AdRequest.getRootAsAdRequest(new ByteBuffer(bytes)).id() ?? '';
}

export function parseAdRequest(bytes: Uint8Array, limits: ParseLimits): ParsedAdRequest {
  requireVerified(addon.verifyAdRequest, bytes);
  const request = AdRequest.getRootAsAdRequest(new ByteBuffer(bytes));

  const requestId = request.id() ?? '';
  if (requestId.length === 0 || requestId.length > maxRequestIdLength) {
    throw new RequestError(422, 'invalid_request', `id must be 1..${maxRequestIdLength} characters`);
  }
  const placement = request.placement();
  if (placement === Placement.Unknown || Placement[placement] === undefined) {
    throw new RequestError(422, 'invalid_request', `unknown placement ${placement}`);
  }
  const slots = request.slots();
  if (slots < 1 || slots > limits.maxSlots) {
    throw new RequestError(422, 'invalid_request', `slots must be in 1..${limits.maxSlots} (got ${slots})`);
  }
  const floor = request.floorCpmMicros();
  if (floor < 0n || floor > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RequestError(422, 'invalid_request', `floor_cpm_micros must be in 0..${Number.MAX_SAFE_INTEGER} (got ${floor})`);
  }
  requireAcceptedCurrency(request, limits.currency);
  const tmax = request.tmaxMs();
  const personalised = mayPersonalise(request);
  return {
    request,
    requestId,
    userId: personalised ? (request.user()?.id() ?? '') : '',
    personalised,
    placement,
    slots,
    floorCpmMicros: Number(floor),
    tmaxMs: tmax === 0 ? limits.defaultTmaxMs : Math.min(tmax, limits.maxTmaxMs),
    debug: request.debug(),
    test: request.test(),
  };
}

/** Currencies a refusal's message quotes at most, so that a long list cannot make a long answer. */
const quotedCurrencies = 8;

/** An empty `cur` accepts any currency; otherwise it must name the account currency, since no amount is ever converted. */
function requireAcceptedCurrency(request: AdRequest, currency: string): void {
  const length = request.curLength();
  if (length === 0) return;
  for (let i = 0; i < length; i++) if (request.cur(i) === currency) return;
  const named = Array.from({ length: Math.min(length, quotedCurrencies) }, (_, i) => JSON.stringify(request.cur(i) ?? ''));
  const more = length > quotedCurrencies ? ` and ${length - quotedCurrencies} more` : '';
  throw new RequestError(
    422,
    'unsupported_currency',
    `cur names ${named.join(', ')}${more} but this account prices only in ${currency}; send ${currency} in cur, or leave cur empty`,
  );
}
