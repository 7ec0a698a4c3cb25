import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Builder } from 'flatbuffers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { signEventToken, signingKeyOf } from '../../src/money/event_token';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { BidType, Event, EventType } from '../../src/protocol/schema';
import { baseEnv, billable, checkAttributionWindow, expectedCharge, send, serve, spend, tinyModelWithCampaigns, tokenKey } from '../helpers/events';
import { postAd } from '../helpers/requests';

describe('POST /v1/events', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon(baseEnv);
  });
  afterAll(async () => {
    await daemon.stop();
  });

  it('verifies and answers the events of test traffic, billing and keeping none of them', async () => {
    const before = await spend(daemon.url);
    const [ad] = await serve(daemon.url, 1, 'test-traffic', 'running shoes', true);
    for (const type of ['impression', 'click', 'conversion'] as const) {
      const response = await send(daemon.url, { event_id: `test-traffic-${type}`, type, token: ad!.token });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ status: 'test', eventId: `test-traffic-${type}`, chargedMicros: 0, capped: false });
    }
    // The flag lives inside the sealed token: a forged one is still refused, and spend never moves.
    const forged = ad!.token.slice(0, 20) + (ad!.token[20] === 'A' ? 'B' : 'A') + ad!.token.slice(21);
    expect((await send(daemon.url, { event_id: 'test-traffic-forged', type: 'click', token: forged })).status).toBe(422);
    expect(await spend(daemon.url)).toEqual(before);
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/adserve_events_total\{type="click",outcome="test"\} 1\n/);
    // First in this daemon's life: nothing recorded, and the next test sees the calibration monitor untouched.
    expect(metrics).toMatch(/adserve_events_total\{type="click",outcome="recorded"\} 0\n/);
  });

  it('charges the billable event at the auction price, once, in order', async () => {
    const [ad] = await serve(daemon.url, 1, 'order');
    const events = ['impression', 'click', 'conversion'] as const;
    let charged = 0;
    for (const type of events) {
      const response = await send(daemon.url, { event_id: `order-${type}`, type, token: ad!.token });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { chargedMicros: number };
      expect(body.chargedMicros).toBe(billable[ad!.bidType] === type ? expectedCharge(ad!) : 0);
      charged += body.chargedMicros;
    }
    expect(charged).toBe(expectedCharge(ad!));
    // The calibration monitor saw one impression with the predicted pCTR, one click, one conversion.
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/adserve_calibration_impressions_total\{placement="Search",model="tiny-[0-9a-f]+"\} 1\n/);
    expect(metrics).toMatch(/adserve_calibration_clicks_total\{placement="Search",model="tiny-[0-9a-f]+"\} 1\n/);
    const predicted = Number(/adserve_calibration_predicted_clicks_total\{placement="Search",model="[^"]+"\} ([0-9.e-]+)/.exec(metrics)![1]);
    expect(predicted).toBeCloseTo(ad!.pCtr, 5);
    expect((await send(daemon.url, { event_id: 'order-click', type: 'click', token: ad!.token })).status).toBe(409);
    expect((await send(daemon.url, { event_id: 'order-click-again', type: 'click', token: ad!.token })).status).toBe(409);
  });

  it('refuses events out of order, forged, expired or malformed, charging nothing', async () => {
    const [ad] = await serve(daemon.url, 1, 'bad', 'yoga mat');
    const before = await spend(daemon.url);
    const cases: Array<[object, number, RegExp]> = [
      [{ event_id: 'c1', type: 'click', token: ad!.token }, 422, /needs an impression/],
      [{ event_id: 'c2', type: 'conversion', token: ad!.token }, 422, /needs a click/],
      [{ event_id: 'f1', type: 'impression', token: ad!.token.slice(0, 40) + (ad!.token[40] === 'A' ? 'B' : 'A') + ad!.token.slice(41) }, 422, /signature/],
      [{ event_id: 'f2', type: 'impression', token: 'v1.nope' }, 422, /malformed/],
      [{ event_id: '', type: 'impression', token: ad!.token }, 422, /event_id/],
      [{ event_id: 'f3', type: 'refund', token: ad!.token }, 422, /type must be/],
    ];
    const key = signingKeyOf(Buffer.from(tokenKey));
    const expired = signEventToken(
      {
        requestId: 'r',
        adId: ad!.adId,
        slot: 0,
        bidType: ad!.bidType,
        priceMicros: 1,
        issuedMs: 0,
        expiresMs: 1,
        userId: '',
        pCtr: 0.1,
        pCvr: 0.1,
        placement: 'Search',
        modelVersion: 'm',
      },
      key,
    );
    cases.push([{ event_id: 'e1', type: 'impression', token: expired }, 422, /expired/]);
    for (const [event, status, message] of cases) {
      const response = await send(daemon.url, event);
      expect(response.status).toBe(status);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(message);
    }
    const notJson = await fetch(`${daemon.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(notJson.status).toBe(400);
    const empty = await fetch(`${daemon.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' });
    expect(empty.status).toBe(400);
    expect((await spend(daemon.url)).events).toBe(before.events);
  });

  it('takes the binary Event FlatBuffer', async () => {
    const [ad] = await serve(daemon.url, 1, 'binary', 'dog food');
    const builder = new Builder(256);
    const id = builder.createString('binary-impression');
    const token = builder.createString(ad!.token);
    Event.startEvent(builder);
    Event.addEventId(builder, id);
    Event.addType(builder, EventType.Impression);
    Event.addToken(builder, token);
    Event.finishEventBuffer(builder, Event.endEvent(builder));
    const response = await fetch(`${daemon.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-flatbuffers' },
      body: builder.asUint8Array(),
    });
    expect(response.status).toBe(200);
    const garbage = await fetch(`${daemon.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-flatbuffers' },
      body: new Uint8Array(12),
    });
    expect(garbage.status).toBe(400);
  });
});

describe('attribution', () => {
  it('charges a conversion only within the attribution window after its click', async () => {
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_ATTRIBUTION_WINDOW_SECONDS: '1' });
    try {
      await checkAttributionWindow(daemon.url, 'window');
    } finally {
      await daemon.stop();
    }
  });
});

describe('durability', () => {
  it('loses no acknowledged event and counts none twice across kill -9', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-ledger-'));
    // Snapshots every 40 events, so the kill lands among snapshots and segment switches.
    const first = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: dataDir, ADSERVE_LEDGER_SNAPSHOT_EVENTS: '40' });
    const served = await serve(first.url, 300, 'kill');
    const acked = new Map<string, number>(); // event id -> charged micros
    const sent = new Map<string, number>(); // event id -> charge if recorded
    let killed = false;
    const streams = Array.from({ length: 16 }, async (_, lane) => {
      for (let i = lane; i < served.length && !killed; i += 16) {
        const ad = served[i]!;
        for (const type of ['impression', 'click'] as const) {
          const id = `kill-${i}-${type}`;
          sent.set(id, billable[ad.bidType] === type ? expectedCharge(ad) : 0);
          try {
            const response = await send(first.url, { event_id: id, type, token: ad.token });
            if (response.status === 200) acked.set(id, ((await response.json()) as { chargedMicros: number }).chargedMicros);
          } catch {
            return; // the daemon is gone
          }
        }
      }
    });
    while (acked.size < 150) await new Promise((resolve) => setTimeout(resolve, 2));
    killed = true;
    first.child.kill('SIGKILL');
    await Promise.all(streams);
    await first.stop();

    const second = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: dataDir });
    try {
      const recovered = await spend(second.url);
      const lifetime = Object.values(recovered.campaigns).reduce((sum, c) => sum + c.lifetimeMicros, 0);
      const ackedCharge = [...acked.values()].reduce((a, b) => a + b, 0);
      const sentCharge = [...sent.values()].reduce((a, b) => a + b, 0);
      expect(recovered.events).toBeGreaterThanOrEqual(acked.size);
      expect(recovered.events).toBeLessThanOrEqual(sent.size);
      expect(lifetime).toBeGreaterThanOrEqual(ackedCharge - 1e-6);
      expect(lifetime).toBeLessThanOrEqual(sentCharge + 1e-6);
      // The snapshot and the segments after it hold every event once, and exactly the recovered charges.
      const records = readFileSync(path.join(dataDir, 'snapshot.jsonl'), 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { kind: string; ids?: string[]; entries?: Array<[string, number]> });
      const snapshot = {
        eventIds: records.flatMap((record) => (record.kind === 'ids' ? record.ids! : [])),
        lifetimeNanos: records.flatMap((record) => (record.kind === 'lifetime' ? record.entries! : [])),
      };
      const logged = readdirSync(dataDir)
        .filter((name) => name.endsWith('.log'))
        .flatMap((name) =>
          readFileSync(path.join(dataDir, name), 'utf8')
            .split('\n')
            .filter((line) => line !== ''),
        )
        .map((line) => JSON.parse(line) as { id: string; chargeNanos: number });
      const ids = [...snapshot.eventIds, ...logged.map((e) => e.id)];
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(recovered.events);
      const snapshotNanos = snapshot.lifetimeNanos.reduce((sum, [, nanos]) => sum + nanos, 0);
      expect((snapshotNanos + logged.reduce((sum, e) => sum + e.chargeNanos, 0)) / 1000).toBeCloseTo(lifetime, 6);
      for (const id of acked.keys()) expect(ids).toContain(id);
      // Replaying an acknowledged event after the restart is refused: it is not charged again.
      const [someId] = [...acked.keys()];
      const [, index, type] = /^kill-(\d+)-(\w+)$/.exec(someId!)!;
      expect((await send(second.url, { event_id: someId, type, token: served[Number(index)]!.token })).status).toBe(409);
    } finally {
      await second.stop();
    }
  });
});

describe('frequency caps', () => {
  it('stops showing a campaign to a user who reached its cap', async () => {
    const dir = tinyModelWithCampaigns((campaign) => (campaign.frequency_cap = { impressions: 1, window_seconds: 3600 }));
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir });
    try {
      const winners = async (user: string): Promise<Array<{ campaign: string; token: string }>> => {
        const ad = decodeAdResponse(
          new Uint8Array(await (await postAd(daemon.url, encodeAdRequest({ id: `fc-${user}`, query: 'coffee beans', userId: user, slots: 3 }))).arrayBuffer()),
        );
        return Array.from({ length: ad.adsLength() }, (_, i) => ({ campaign: ad.ads(i)!.campaignId()!, token: ad.ads(i)!.eventToken()! }));
      };
      // A campaign the user is shown again and again while uncapped.
      const before = await winners('capped-user');
      const again = await winners('capped-user');
      const shown = before.find((w) => again.some((other) => other.campaign === w.campaign))!;
      expect(shown).toBeDefined();
      expect((await send(daemon.url, { event_id: 'fc-imp', type: 'impression', token: shown.token })).status).toBe(200);
      for (let i = 0; i < 5; i++) expect((await winners('capped-user')).some((w) => w.campaign === shown.campaign)).toBe(false);
      // The cap is per user: anonymous traffic is never capped.
      const anonymous = decodeAdResponse(new Uint8Array(await (await postAd(daemon.url, encodeAdRequest({ query: 'coffee beans', slots: 3 }))).arrayBuffer()));
      expect(anonymous.adsLength()).toBe(3);
    } finally {
      await daemon.stop();
    }
  });
});

describe('budgets', () => {
  it('stops a campaign at its lifetime budget and never serves paused campaigns', async () => {
    let index = 0;
    const dir = tinyModelWithCampaigns((campaign) => {
      campaign.lifetime_budget_micros = 1000;
      if (index++ % 2 === 1) campaign.status = 'paused';
    });
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir });
    try {
      const served = await serve(daemon.url, 60, 'life', 'yoga mat');
      // Odd campaigns (c000001, c000003, ...) are paused.
      expect(served.every((s) => Number(s.campaignId.slice(1)) % 2 === 0)).toBe(true);
      const ad = served.find((s) => s.bidType === BidType.Cpc)!;
      await send(daemon.url, { event_id: 'l-i', type: 'impression', token: ad.token });
      const click = (await (await send(daemon.url, { event_id: 'l-c', type: 'click', token: ad.token })).json()) as { chargedMicros: number };
      expect(click.chargedMicros).toBe(1000);
      expect((await spend(daemon.url)).campaigns[ad.campaignId]).toMatchObject({ lifetimeMicros: 1000, exhausted: true });
      expect((await serve(daemon.url, 60, 'life-after', 'yoga mat')).some((s) => s.campaignId === ad.campaignId)).toBe(false);
    } finally {
      await daemon.stop();
    }
  });

  it("counts daily spend against the day in the campaign's time zone", async () => {
    // A zone whose date differs from UTC's right now: a day ahead after 10:00 UTC, a day behind before.
    const ahead = new Date().getUTCHours() >= 10;
    const timeZone = ahead ? 'Pacific/Kiritimati' : 'Pacific/Pago_Pago';
    const dir = tinyModelWithCampaigns((campaign) => (campaign.time_zone = timeZone));
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir });
    try {
      const ad = (await serve(daemon.url, 40, 'zone', 'usb cable')).find((s) => s.bidType === BidType.Cpc)!;
      await send(daemon.url, { event_id: 'z-i', type: 'impression', token: ad.token });
      expect((await send(daemon.url, { event_id: 'z-c', type: 'click', token: ad.token })).status).toBe(200);
      const utcDay = Math.floor(Date.now() / 86_400_000);
      const logged = readdirSync(daemon.dataDir)
        .filter((name) => name.endsWith('.log'))
        .flatMap((name) =>
          readFileSync(path.join(daemon.dataDir, name), 'utf8')
            .split('\n')
            .filter((line) => line !== ''),
        )
        .map((line) => JSON.parse(line) as { id: string; day: number });
      expect(logged.find((e) => e.id === 'z-c')!.day).toBe(utcDay + (ahead ? 1 : -1));
      expect((await spend(daemon.url)).campaigns[ad.campaignId]!.todayMicros).toBe(expectedCharge(ad));
    } finally {
      await daemon.stop();
    }
  });

  it('refuses a catalog with an unknown time zone, naming the campaign', async () => {
    const dir = tinyModelWithCampaigns((campaign) => (campaign.time_zone = 'Mars/Olympus_Mons'));
    await expect(startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir })).rejects.toThrow(/campaign c\d+: unknown time zone "Mars\/Olympus_Mons"/);
  });

  it('caps the charge at the daily budget and stops serving the campaign at once', async () => {
    // Campaigns that may spend 1,000 micros a day: less than any click.
    const dir = tinyModelWithCampaigns((campaign) => (campaign.daily_budget_micros = 1000));
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir });
    try {
      const ad = (await serve(daemon.url, 40, 'budget', 'usb cable')).find((s) => s.bidType === BidType.Cpc)!;
      expect(ad.priceMicros).toBeGreaterThan(1000);
      expect((await send(daemon.url, { event_id: 'b-i', type: 'impression', token: ad.token })).status).toBe(200);
      const click = (await (await send(daemon.url, { event_id: 'b-c', type: 'click', token: ad.token })).json()) as { chargedMicros: number; capped: boolean };
      expect(click).toMatchObject({ chargedMicros: 1000, capped: true });
      const state = (await spend(daemon.url)).campaigns[ad.campaignId]!;
      expect(state).toMatchObject({ lifetimeMicros: 1000, exhausted: true });
      const after = await serve(daemon.url, 100, 'after', 'usb cable');
      expect(after.some((s) => s.campaignId === ad.campaignId)).toBe(false);
    } finally {
      await daemon.stop();
    }
  });
});
