// The ad decision, stage by stage. Until the engine lands (native retrieval and scoring), the
// decision stops after parsing and says so in the response: no auction runs, no ads are invented.
import type { Config } from '../config';
import { encodeAdResponse } from '../protocol/encode_response';
import { Placement, ResponseStatus } from '../protocol/schema';
import { parseAdRequest } from './parse_request';

export interface AdDecision {
  response: Uint8Array;
  /** Placement name for metrics labels. */
  placement: string;
}

export function handleAdRequest(body: Uint8Array, config: Config): AdDecision {
  const startedNs = process.hrtime.bigint();
  const parsed = parseAdRequest(body, config);
  const parsedNs = process.hrtime.bigint();
  const response = encodeAdResponse({
    requestId: parsed.requestId,
    status: ResponseStatus.NoEngine,
    message: 'no engine loaded: no model and catalog are available, so no auction ran',
    timings: parsed.debug ? [{ stage: 'parse', nanos: parsedNs - startedNs }] : undefined,
  });
  return { response, placement: Placement[parsed.placement] ?? 'unknown' };
}
