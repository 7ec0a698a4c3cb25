// The JSON form of the protocol maps every schema field: a field added to schemas/*.fbs fails here
// until src/protocol/json_request.ts (request tables) or json_response.ts (response tables) maps it.
import { ByteBuffer } from 'flatbuffers';
import { describe, expect, it } from 'vitest';

import { encodeAdResponse } from '../../src/protocol/encode_response';
import { adRequestFromJson, requestMappings } from '../../src/protocol/json_request';
import { adResponseJson, responseFieldNames } from '../../src/protocol/json_response';
import { AdRequest, AuctionType, BidType, DeviceType, Gender, NoFillReason, Placement, ResponseStatus } from '../../src/protocol/schema';
import { absentFields, everyFieldRequest, schemaTables } from '../helpers/clients';

const sorted = (names: Iterable<string>): string[] => [...names].sort();

describe('JSON mapping coverage', () => {
  const tables = schemaTables();

  it('maps every field of every request table, under its schema name', () => {
    expect(sorted(requestMappings.map((mapping) => mapping.name))).toEqual(['AdRequest', 'Device', 'Geo', 'Regs', 'User']);
    for (const mapping of requestMappings) {
      expect(sorted(Object.keys(mapping.fields)), mapping.name).toEqual(sorted(tables.get(mapping.name)!.map((field) => field.name)));
    }
  });

  it('names every field of every response table, under its schema name', () => {
    expect(sorted(Object.keys(responseFieldNames))).toEqual(['Ad', 'AdResponse', 'Creative', 'StageTiming']);
    for (const [table, names] of Object.entries(responseFieldNames)) {
      expect(sorted(names), table).toEqual(sorted(tables.get(table)!.map((field) => field.name)));
    }
  });

  it('writes every AdRequest field of a JSON request that sets them all, with its value', () => {
    const bytes = adRequestFromJson(new TextEncoder().encode(JSON.stringify(everyFieldRequest)));
    expect(absentFields(bytes, 'AdRequest')).toEqual([]);
    const request = AdRequest.getRootAsAdRequest(new ByteBuffer(bytes));
    const r = everyFieldRequest;
    expect({
      placement: request.placement(),
      auctionType: request.auctionType(),
      gender: request.user()!.gender(),
      deviceType: request.device()!.type(),
      segments: [request.user()!.segments(0), request.user()!.segments(1)],
      floor: request.floorCpmMicros(),
      timestamp: request.timestampMs(),
      utcOffset: request.utcOffsetMinutes(),
      zip: request.geo()!.zip(),
      cur: [request.cur(0), request.cur(1)],
    }).toEqual({
      placement: Placement.Search,
      auctionType: AuctionType.Gsp,
      gender: Gender.Female,
      deviceType: DeviceType.Mobile,
      segments: [...r.user.segments],
      floor: BigInt(r.floor_cpm_micros),
      timestamp: BigInt(r.timestamp_ms),
      utcOffset: r.utc_offset_minutes,
      zip: r.geo.zip,
      cur: [...r.cur],
    });
  });

  it('reads every AdResponse field into JSON, enums by name and floats as their shortest 32-bit decimal', () => {
    const json = JSON.parse(
      adResponseJson(
        encodeAdResponse({
          requestId: 'coverage',
          status: ResponseStatus.Ok,
          message: 'm',
          degraded: true,
          modelVersion: 'v1',
          ads: [
            {
              slot: 0,
              adId: 'a',
              campaignId: 'c',
              advertiserId: 'v',
              productId: 'p',
              title: 't',
              imageUrl: 'i',
              landingUrl: 'l',
              bidType: BidType.Cpm,
              bidMicros: 2_000_000,
              priceMicros: 1_500_000,
              pCtr: 0.1,
              pCvr: 0.02,
              ecpmMicros: 3_000,
              quality: 0.75,
              eventToken: 'v2.k.token',
            },
          ],
          timings: [{ stage: 'parse', nanos: 1234n }],
          errorCode: 0,
          currency: 'EUR',
          noFillReason: NoFillReason.BelowFloor,
        }),
      ),
    ) as Record<string, unknown>;
    expect(json).toEqual({
      request_id: 'coverage',
      status: 'Ok',
      message: 'm',
      ads: [
        {
          slot: 0,
          ad_id: 'a',
          campaign_id: 'c',
          advertiser_id: 'v',
          product_id: 'p',
          creative: { title: 't', description: '', image_url: 'i', landing_url: 'l' },
          bid_type: 'Cpm',
          bid_micros: 2_000_000,
          price_micros: 1_500_000,
          pctr: 0.1,
          pcvr: 0.02,
          ecpm_micros: 3_000,
          quality: 0.75,
          event_token: 'v2.k.token',
        },
      ],
      degraded: true,
      model_version: 'v1',
      timings: [{ stage: 'parse', nanos: 1234 }],
      error_code: 0,
      cur: 'EUR',
      no_fill_reason: 'BelowFloor',
    });
  });
});
