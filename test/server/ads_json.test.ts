// POST /v1/ads with Content-Type application/json, against the real daemon and the tiny model: the
// JSON form takes the binary form's decision path, answers the same decision as JSON, refuses bad
// JSON with the field at fault named, and its event tokens record events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { maxJsonListLength, maxJsonStringLength } from '../../src/protocol/json_request';
import { BidType, Placement } from '../../src/protocol/schema';
import { baseEnv, send } from '../helpers/events';
import { postAd } from '../helpers/requests';

const maxBodyBytes = 8192;
let daemon: Daemon;

beforeAll(async () => {
  daemon = await startDaemon({ ...baseEnv, ADSERVE_MAX_BODY_BYTES: String(maxBodyBytes) });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

const postJson = (body: string | Uint8Array, contentType = 'application/json'): Promise<Response> =>
  fetch(`${daemon.url}/v1/ads`, { method: 'POST', headers: { 'content-type': contentType }, body });

interface JsonAd {
  ad_id: string;
  bid_type: string;
  price_micros: number;
  bid_micros: number;
  ecpm_micros: number;
  slot: number;
  event_token: string;
  creative: { title: string };
}

async function expectRefusal(response: Response, status: number, field: string | undefined, message: RegExp): Promise<void> {
  const body = (await response.json()) as { error: { code: string; message: string; field?: string } };
  expect({ status: response.status, contentType: response.headers.get('content-type'), field: body.error.field }).toEqual({
    status,
    contentType: 'application/json',
    field,
  });
  expect(body.error.message).toMatch(message);
}

describe('POST /v1/ads as JSON', () => {
  it('answers a JSON AdRequest with the same winners and prices as the same request as a FlatBuffer', async () => {
    const request = { id: 'json-same', placement: 'Search', query: 'running shoes', slots: 3, user: { id: 'u-json' }, geo: { country: 'US' } };
    const jsonResponse = await postJson(JSON.stringify(request));
    expect(jsonResponse.status).toBe(200);
    expect(jsonResponse.headers.get('content-type')).toBe('application/json');
    expect(jsonResponse.headers.get('x-request-id')).toBe('json-same');
    const json = (await jsonResponse.json()) as { request_id: string; status: string; ads: JsonAd[]; cur: string; no_fill_reason: string };
    const binary = decodeAdResponse(
      new Uint8Array(
        await (
          await postAd(
            daemon.url,
            encodeAdRequest({ id: 'json-same', placement: Placement.Search, query: 'running shoes', slots: 3, userId: 'u-json', country: 'US' }),
          )
        ).arrayBuffer(),
      ),
    );
    expect(json.ads.length).toBeGreaterThan(0);
    expect({ request_id: json.request_id, status: json.status, cur: json.cur, no_fill_reason: json.no_fill_reason }).toEqual({
      request_id: 'json-same',
      status: 'Ok',
      cur: binary.cur(),
      no_fill_reason: 'None',
    });
    const winners = (ads: JsonAd[]) =>
      ads.map(({ slot, ad_id, bid_type, bid_micros, price_micros, ecpm_micros, creative }) => ({
        slot,
        ad_id,
        bid_type,
        bid_micros,
        price_micros,
        ecpm_micros,
        title: creative.title,
      }));
    const binaryWinners = Array.from({ length: binary.adsLength() }, (_, i) => {
      const ad = binary.ads(i)!;
      return {
        slot: ad.slot(),
        ad_id: ad.adId(),
        bid_type: BidType[ad.bidType()],
        bid_micros: Number(ad.bidMicros()),
        price_micros: Number(ad.priceMicros()),
        ecpm_micros: Number(ad.ecpmMicros()),
        title: ad.creative()!.title(),
      };
    });
    expect(winners(json.ads)).toEqual(binaryWinners);
    for (const ad of json.ads) expect(ad.event_token).toMatch(/^v\d+\./);
  });

  it('takes a charset parameter on the media type', async () => {
    const response = await postJson(JSON.stringify({ id: 'json-charset', placement: 'Search', query: 'running shoes' }), 'application/json; charset=utf-8');
    expect(response.status).toBe(200);
    expect(((await response.json()) as { status: string }).status).toBe('Ok');
  });

  it("records events sent with the JSON answer's event tokens", async () => {
    const answer = (await (await postJson(JSON.stringify({ id: 'json-events', placement: 'Search', query: 'running shoes', slots: 2 }))).json()) as {
      ads: JsonAd[];
    };
    const [first] = answer.ads;
    const recorded = await send(daemon.url, { event_id: 'json-events-imp', type: 'impression', token: first!.event_token });
    expect(recorded.status).toBe(200);
    expect(await recorded.json()).toMatchObject({ status: 'recorded', eventId: 'json-events-imp' });
    const click = await send(daemon.url, { event_id: 'json-events-click', type: 'click', token: first!.event_token });
    const charged = (await click.json()) as { chargedMicros: number };
    expect(click.status).toBe(200);
    expect(charged.chargedMicros).toBe(first!.bid_type === 'Cpc' ? first!.price_micros : 0);
  });

  it('refuses malformed JSON and bytes that are not UTF-8 with 400', async () => {
    await expectRefusal(await postJson('{"id": "x", '), 400, undefined, /not valid UTF-8 JSON/);
    await expectRefusal(await postJson(new Uint8Array([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])), 400, undefined, /not valid UTF-8 JSON/);
  });

  it('refuses an invalid field with 422 naming its JSON path', async () => {
    const base = { id: 'json-bad', placement: 'Search' };
    const cases: Array<[object, string, RegExp]> = [
      [{ ...base, colour: 'red' }, 'colour', /not a field of AdRequest/],
      [{ ...base, user: { id: 'u', age: 30 } }, 'user.age', /not a field of User/],
      [{ ...base, slots: '3' }, 'slots', /integer in 0\.\.65535/],
      [{ ...base, slots: 70_000 }, 'slots', /integer in 0\.\.65535/],
      [{ ...base, tmax_ms: 1.5 }, 'tmax_ms', /integer in 0\.\.4294967295/],
      [{ ...base, utc_offset_minutes: -40_000 }, 'utc_offset_minutes', /integer in -32768\.\.32767/],
      [{ ...base, floor_cpm_micros: 2 ** 60 }, 'floor_cpm_micros', /integer in -9007199254740991\.\.9007199254740991/],
      [{ ...base, timestamp_ms: -1 }, 'timestamp_ms', /integer in 0\.\./],
      [{ ...base, placement: 'search' }, 'placement', /one of Unknown, Search, ProductPage/],
      [{ ...base, placement: 1 }, 'placement', /one of/],
      [{ ...base, debug: 'yes' }, 'debug', /true or false/],
      [{ ...base, user: 'u1' }, 'user', /must be an object \(a User\)/],
      [{ ...base, device: { type: 'Phone' } }, 'device.type', /one of Unknown, Desktop, Mobile, Tablet, App/],
      [{ ...base, cur: ['EUR', 7] }, 'cur[1]', /must be a string/],
      [{ ...base, blocked_products: 'p1' }, 'blocked_products', /list of strings/],
      [{ ...base, query: 'q'.repeat(maxJsonStringLength + 1) }, 'query', new RegExp(`at most ${maxJsonStringLength} characters`)],
      [
        { ...base, user: { segments: Array.from({ length: maxJsonListLength + 1 }, () => 's') } },
        'user.segments',
        new RegExp(`at most ${maxJsonListLength} strings`),
      ],
      [{ placement: 'Search' }, 'id', /is required/],
      [{ ...base, id: 42 }, 'id', /must be a string/],
    ];
    for (const [request, field, message] of cases) await expectRefusal(await postJson(JSON.stringify(request)), 422, field, message);
    await expectRefusal(await postJson('[1, 2]'), 422, undefined, /must be a JSON object/);
  });

  it('refuses what the decision refuses, as JSON errors', async () => {
    await expectRefusal(await postJson(JSON.stringify({ id: 'json-no-placement', query: 'running shoes' })), 422, undefined, /unknown placement 0/);
    await expectRefusal(await postJson(JSON.stringify({ id: 'json-slots', placement: 'Search', slots: 0 })), 422, undefined, /slots must be in 1\.\./);
  });

  it('refuses a body over maxBodyBytes with 413 and another content type with 415', async () => {
    const tooLarge = JSON.stringify({ id: 'json-large', placement: 'Search', query: 'x'.repeat(maxBodyBytes) });
    await expectRefusal(await postJson(tooLarge), 413, undefined, /exceeds the limit/);
    await expectRefusal(await postJson('{"id": "x"}', 'text/plain'), 415, undefined, /Content-Type must be application\/x-flatbuffers or application\/json/);
  });
});
