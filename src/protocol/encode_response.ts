// Builds AdResponse FlatBuffers. The builder is reused across responses (one JS thread).
import { Builder } from 'flatbuffers';

import { AdResponse, ResponseStatus, StageTiming } from './schema';

export interface StageNanos {
  stage: string;
  nanos: bigint;
}

export interface AdResponseFields {
  requestId: string;
  status: ResponseStatus;
  message?: string;
  degraded?: boolean;
  modelVersion?: string;
  /** Only for requests that asked for debug. */
  timings?: readonly StageNanos[];
}

const builder = new Builder(1024);

export function encodeAdResponse(fields: AdResponseFields): Uint8Array {
  builder.clear();
  const requestId = builder.createString(fields.requestId);
  const message = fields.message === undefined ? 0 : builder.createString(fields.message);
  const modelVersion = fields.modelVersion === undefined ? 0 : builder.createString(fields.modelVersion);
  const ads = AdResponse.createAdsVector(builder, []);
  let timings = 0;
  if (fields.timings !== undefined) {
    const offsets = fields.timings.map(({ stage, nanos }) =>
      StageTiming.createStageTiming(builder, builder.createString(stage), nanos),
    );
    timings = AdResponse.createTimingsVector(builder, offsets);
  }
  const response = AdResponse.createAdResponse(
    builder,
    requestId,
    fields.status,
    message,
    ads,
    fields.degraded ?? false,
    modelVersion,
    timings,
  );
  AdResponse.finishAdResponseBuffer(builder, response);
  // Copied out because the builder's buffer is reused by the next response.
  return builder.asUint8Array().slice();
}
