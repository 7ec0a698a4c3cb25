// The Python and TypeScript example clients against the real daemon: a request with every field
// set fills, every field of the answer decodes to what the daemon sent, and an event sent through
// the client is recorded once.
import { ByteBuffer } from 'flatbuffers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type AdDecision, adDecisionOf, AdserveClient, AdserveError } from '../../clients/typescript/adserve_client';
import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { AdRequest, AuctionType, DeviceType, Gender, Placement } from '../../src/protocol/schema';
import { camelCase, everyFieldRequest, everyFieldSpec, runPython } from '../helpers/clients';
import { baseEnv } from '../helpers/events';

/** An AdRequest FlatBuffer in the schema's names, to compare with what the client was asked to send. */
function requestFieldsOf(bytes: Uint8Array): unknown {
  const request = AdRequest.getRootAsAdRequest(new ByteBuffer(bytes));
  const strings = (length: number, at: (i: number) => string): string[] => Array.from({ length }, (_, i) => at(i));
  const user = request.user()!;
  const device = request.device()!;
  const geo = request.geo()!;
  const regs = request.regs()!;
  return {
    id: request.id(),
    placement: Placement[request.placement()],
    tmax_ms: request.tmaxMs(),
    user: {
      id: user.id(),
      yob: user.yob(),
      gender: Gender[user.gender()],
      segments: strings(user.segmentsLength(), (i) => user.segments(i)),
      consent: user.consent(),
    },
    device: { type: DeviceType[device.type()], os: device.os(), language: device.language() },
    geo: { country: geo.country(), region: geo.region(), city: geo.city(), zip: geo.zip() },
    query: request.query(),
    product_id: request.productId(),
    category_id: request.categoryId(),
    slots: request.slots(),
    floor_cpm_micros: Number(request.floorCpmMicros()),
    auction_type: AuctionType[request.auctionType()],
    blocked_advertisers: strings(request.blockedAdvertisersLength(), (i) => request.blockedAdvertisers(i)),
    blocked_categories: strings(request.blockedCategoriesLength(), (i) => request.blockedCategories(i)),
    blocked_products: strings(request.blockedProductsLength(), (i) => request.blockedProducts(i)),
    debug: request.debug(),
    test: request.test(),
    timestamp_ms: Number(request.timestampMs()),
    utc_offset_minutes: request.utcOffsetMinutes(),
    session_id: request.sessionId(),
    page: request.page(),
    cur: strings(request.curLength(), (i) => request.cur(i)),
    regs: { coppa: regs.coppa(), gdpr: regs.gdpr(), us_privacy: regs.usPrivacy(), gpp: regs.gpp(), gpp_sid: Array.from(regs.gppSidArray()!) },
  };
}

/** The Python client's snake_case answer in the TypeScript client's names. */
function camelCased(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelCased);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [camelCase(key), camelCased(inner)]));
}

/** What the daemon is known to answer to `everyFieldRequest`: a debug fill of up to 3 slots that honours its blocks. */
function expectEveryFieldFill(decision: AdDecision, requestId: string): void {
  expect(decision).toMatchObject({ requestId, status: 'Ok', message: '', degraded: false, errorCode: 0, cur: 'USD', noFillReason: 'None' });
  expect(decision.modelVersion).toMatch(/^tiny-[0-9a-f]+$/);
  expect(decision.ads.length).toBeGreaterThan(0);
  expect(decision.ads.length).toBeLessThanOrEqual(everyFieldRequest.slots);
  expect(decision.ads.map((ad) => ad.slot)).toEqual(decision.ads.map((_, i) => i));
  for (const ad of decision.ads) {
    expect(ad.adId).toMatch(/^ad\d+$/);
    expect(ad.campaignId).toMatch(/^c\d+$/);
    expect(ad.advertiserId).not.toBe('adv00000');
    expect(ad.productId).not.toBe('p00000005');
    expect(ad.creative!.title.length).toBeGreaterThan(0);
    expect(ad.creative!.landingUrl).toMatch(/^https:\/\//);
    expect(ad.priceMicros).toBeGreaterThan(0);
    expect(ad.priceMicros).toBeLessThanOrEqual(ad.bidMicros);
    expect(ad.pctr).toBeGreaterThan(0);
    expect(ad.quality).toBeGreaterThan(0);
    expect(ad.eventToken).toMatch(/^v2\./);
  }
  expect(decision.timings.map((timing) => timing.stage)).toContain('auction');
  expect(decision.timings.every((timing) => timing.nanos >= 0)).toBe(true);
}

describe('example clients against the daemon', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon(baseEnv);
  });
  afterAll(async () => {
    await daemon.stop();
  });

  const pythonClient = (args: string[], stdin?: string) => runPython(['-m', 'adserve_client', '--url', daemon.url, ...args], stdin);

  it('Python: a request with every field set fills, and every answer field decodes as the TypeScript reader reads the same bytes', async () => {
    const run = await pythonClient(['--raw', 'ads', '-'], JSON.stringify(everyFieldRequest));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const output = JSON.parse(run.stdout) as { sent: string; received: string; response: unknown };
    expect(requestFieldsOf(Buffer.from(output.sent, 'base64'))).toEqual(everyFieldRequest);
    const decision = adDecisionOf(decodeAdResponse(Buffer.from(output.received, 'base64')));
    expect(camelCased(output.response)).toEqual(decision);
    expectEveryFieldFill(decision, everyFieldRequest.id);
  });

  it('Python: an impression and a click are recorded once each, as JSON and as an Event FlatBuffer', async () => {
    // Live traffic: events of ads served to test traffic are answered but never recorded, so never duplicates.
    const run = await pythonClient(['ads', JSON.stringify({ ...everyFieldRequest, id: 'python-events', test: false })]);
    const [ad] = (JSON.parse(run.stdout) as { response: { ads: Array<{ event_token: string }> } }).response.ads;
    const events: Array<[string, string[]]> = [
      ['impression', []],
      ['click', ['--binary', '--timestamp-ms', String(Date.now())]],
    ];
    for (const [type, flags] of events) {
      const first = await pythonClient(['event', `python-${type}`, type, ad!.event_token, ...flags]);
      expect(first.stderr).toBe('');
      expect(JSON.parse(first.stdout)).toMatchObject({ recorded: { event_id: `python-${type}` } });
      const again = await pythonClient(['event', `python-${type}`, type, ad!.event_token, ...flags]);
      expect(again.code).toBe(1);
      expect(JSON.parse(again.stderr)).toMatchObject({ error: { status: 409, code: 'duplicate_event' } });
    }
  });

  it('TypeScript: a request with every field set fills, and the Python reader decodes its answer the same', async () => {
    const client = new AdserveClient(daemon.url);
    const sent = encodeAdRequest(everyFieldSpec('typescript-every-field'));
    expect(requestFieldsOf(sent)).toEqual({ ...everyFieldRequest, id: 'typescript-every-field' });
    const received = await client.postAdRequest(sent);
    const decision = adDecisionOf(decodeAdResponse(received));
    expectEveryFieldFill(decision, 'typescript-every-field');
    const python = await runPython(
      [
        '-c',
        'import base64, json, sys\nfrom adserve_client import decode_ad_response\nprint(json.dumps(decode_ad_response(base64.b64decode(sys.stdin.read())).to_dict()))',
      ],
      Buffer.from(received).toString('base64'),
    );
    expect(python.stderr).toBe('');
    expect(camelCased(JSON.parse(python.stdout))).toEqual(decision);
    expect((await client.requestAds(everyFieldSpec('typescript-request-ads'))).requestId).toBe('typescript-request-ads');
  });

  it('TypeScript: an impression and a click are recorded once each, as JSON and as an Event FlatBuffer', async () => {
    const client = new AdserveClient(daemon.url);
    const [ad] = (await client.requestAds({ ...everyFieldSpec('typescript-events'), test: false })).ads;
    const events = [
      { event: { eventId: 'typescript-impression', type: 'impression', token: ad!.eventToken }, binary: false },
      { event: { eventId: 'typescript-click', type: 'click', token: ad!.eventToken, timestampMs: Date.now() }, binary: true },
    ] as const;
    for (const { event, binary } of events) {
      expect(await client.sendEvent(event, binary)).toMatchObject({ eventId: event.eventId, capped: false });
      const again = await client.sendEvent(event, binary).catch((error: unknown) => error);
      expect(again).toBeInstanceOf(AdserveError);
      expect(again).toMatchObject({ status: 409, code: 'duplicate_event' });
    }
  });

  it('both clients report a refusal with its status and code', async () => {
    const tooMany = { ...everyFieldRequest, id: 'refused', slots: 1000 };
    const python = await pythonClient(['ads', JSON.stringify(tooMany)]);
    expect(python.code).toBe(1);
    expect(JSON.parse(python.stderr)).toMatchObject({ error: { status: 422 } });
    const typescript = await new AdserveClient(daemon.url).requestAds({ ...everyFieldSpec('refused'), slots: 1000 }).catch((error: unknown) => error);
    expect(typescript).toMatchObject({ status: 422, code: (JSON.parse(python.stderr) as { error: { code: string } }).error.code });
  });
});
