// Campaign and ad edits through the admin API: validated, in force for the next request, and still
// in force after a restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { adminToken, baseEnv, serve } from '../helpers/events';

const admin = (url: string, method: string, path: string, body?: unknown): Promise<Response> =>
  fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });

/** Campaigns and ads among the winners of 60 ad requests for `query`. */
async function winners(url: string, tag: string, query = 'yoga mat'): Promise<{ campaigns: Set<string>; ads: Set<string> }> {
  const served = await serve(url, 60, tag, query);
  return { campaigns: new Set(served.map((s) => s.campaignId)), ads: new Set(served.map((s) => s.adId)) };
}

describe('admin campaign and ad edits', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon(baseEnv);
  });
  afterAll(async () => {
    await daemon.stop();
  });

  it('lists campaigns with their settings and spend, and shows one', async () => {
    const list = (await (await admin(daemon.url, 'GET', '/v1/admin/campaigns')).json()) as { campaigns: Array<Record<string, unknown>> };
    expect(list.campaigns.length).toBeGreaterThan(10);
    const [first] = list.campaigns;
    expect(first).toMatchObject({ status: 'active', todayMicros: 0, exhausted: false });
    expect(first!.ads).toBeGreaterThan(0);
    const one = await admin(daemon.url, 'GET', `/v1/admin/campaigns/${first!.id as string}`);
    expect(await one.json()).toEqual(first);
    expect((await admin(daemon.url, 'GET', '/v1/admin/campaigns/nope')).status).toBe(404);
  });

  it('refuses unauthorised, unknown and invalid edits with a clear message, changing nothing', async () => {
    const [campaign] = (await winners(daemon.url, 'refuse')).campaigns;
    const path = `/v1/admin/campaigns/${campaign}`;
    const noToken = await fetch(`${daemon.url}${path}`, { method: 'PATCH', body: '{"status":"paused"}' });
    expect(noToken.status).toBe(401);
    const cases: Array<[unknown, number, RegExp]> = [
      [{ status: 'sleeping' }, 422, /status: must be one of active, paused/],
      [{ bid_micros: -5 }, 422, /bid_micros: must be an integer in 1\.\.1000000000000/],
      // Bounds keep every amount and sum exact: a $1,000,000,000 bid or budget is refused, naming the field.
      [{ bid_micros: 1e15 }, 422, /bid_micros: must be an integer in 1\.\.1000000000000 \(maxBidMicros\)/],
      [{ lifetime_budget_micros: 1e15 }, 422, /lifetime_budget_micros: must be an integer in 0\.\.9000000000000 \(maxBudgetMicros\)/],
      [{ daily_budget_micros: 1.5 }, 422, /daily_budget_micros/],
      [{ frequency_cap: { impressions: 0, window_seconds: 60 } }, 422, /frequency_cap/],
      [{ time_zone: 'Nowhere/Land' }, 422, /unknown time zone/],
      [{ day_parting: [1, 2, 3] }, 422, /day_parting: 24 non-negative hourly weights/],
      [{ bid_type: 'CPM' }, 422, /"bid_type" cannot be edited/],
      [{ status: null }, 422, /"status" cannot be removed/],
      [[1, 2], 422, /JSON object/],
      ['{"status":', 400, /not valid JSON/],
    ];
    for (const [body, status, message] of cases) {
      const response = await admin(daemon.url, 'PATCH', path, body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(message);
    }
    expect((await admin(daemon.url, 'PATCH', '/v1/admin/campaigns/nope', { status: 'paused' })).status).toBe(404);
    expect(await (await admin(daemon.url, 'GET', path)).json()).toMatchObject({ status: 'active' });
  });

  it('pauses and resumes a campaign for the very next request', async () => {
    const [campaign] = (await winners(daemon.url, 'pause-before')).campaigns;
    const paused = await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${campaign}`, { status: 'paused' });
    expect(await paused.json()).toMatchObject({ id: campaign, status: 'paused' });
    expect((await winners(daemon.url, 'pause-during')).campaigns.has(campaign!)).toBe(false);
    expect((await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${campaign}`, { status: 'active' })).status).toBe(200);
    expect((await winners(daemon.url, 'pause-after')).campaigns.has(campaign!)).toBe(true);
  });

  it('applies a bid below the reserve and a spent budget at once', async () => {
    const [lowBid, spentBudget] = (await winners(daemon.url, 'bid-before', 'running shoes')).campaigns;
    // 1 micro is under every reserve price: the campaign can no longer win.
    expect(await (await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${lowBid}`, { bid_micros: 1 })).json()).toMatchObject({ bid_micros: 1 });
    // Campaigns start the day with nothing spent; a lifetime budget of 0 is spent already.
    expect(await (await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${spentBudget}`, { lifetime_budget_micros: 0 })).json()).toMatchObject({
      exhausted: true,
    });
    const after = (await winners(daemon.url, 'bid-after', 'running shoes')).campaigns;
    expect(after.has(lowBid!)).toBe(false);
    expect(after.has(spentBudget!)).toBe(false);
  });

  it('day-parts a campaign: in an hour with no weight it does not run', async () => {
    const [campaign] = (await winners(daemon.url, 'daypart-before', 'desk lamp')).campaigns;
    // All weight on the hour after the current UTC hour (the campaign's zone is UTC).
    const hours = Array.from({ length: 24 }, (_, hour) => (hour === (new Date().getUTCHours() + 1) % 24 ? 1 : 0));
    expect(await (await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${campaign}`, { day_parting: hours })).json()).toMatchObject({ day_parting: hours });
    expect((await winners(daemon.url, 'daypart-during', 'desk lamp')).campaigns.has(campaign!)).toBe(false);
    await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${campaign}`, { day_parting: null });
    expect((await winners(daemon.url, 'daypart-after', 'desk lamp')).campaigns.has(campaign!)).toBe(true);
  });

  it('pauses a single ad, and keeps every edit across a restart', async () => {
    const dataDir = daemon.dataDir;
    const { ads, campaigns } = await winners(daemon.url, 'ad-before', 'coffee beans');
    const [ad] = ads;
    const edited = await admin(daemon.url, 'PATCH', `/v1/admin/ads/${ad}`, { status: 'paused' });
    expect(await edited.json()).toMatchObject({ id: ad, status: 'paused', serving: false });
    expect((await admin(daemon.url, 'PATCH', `/v1/admin/ads/${ad}`, { status: 'gone' })).status).toBe(422);
    expect((await winners(daemon.url, 'ad-during', 'coffee beans')).ads.has(ad!)).toBe(false);
    const [campaign] = [...campaigns];
    await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${campaign}`, { status: 'paused', pacing: 'asap', time_zone: 'Europe/Berlin' });

    await daemon.stop();
    daemon = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: dataDir });
    expect(await (await admin(daemon.url, 'GET', `/v1/admin/campaigns/${campaign}`)).json()).toMatchObject({
      status: 'paused',
      pacing: 'asap',
      time_zone: 'Europe/Berlin',
    });
    const after = await winners(daemon.url, 'ad-after', 'coffee beans');
    expect(after.ads.has(ad!)).toBe(false);
    expect(after.campaigns.has(campaign!)).toBe(false);
    // Removing an optional setting goes back to the default.
    expect(await (await admin(daemon.url, 'PATCH', `/v1/admin/campaigns/${campaign}`, { time_zone: null, status: 'active' })).json()).not.toHaveProperty(
      'time_zone',
    );
  });
});
