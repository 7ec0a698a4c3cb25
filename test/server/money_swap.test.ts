// Money through a hot model swap (POST /v1/admin/models) of a running daemon: pacing, budgets and
// spend belong to the process, not to the model serving when they were set.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { adminToken, baseEnv, billable, expectedCharge, send, type Served, serve, spend, tinyModelWithCampaigns } from '../helpers/events';

// Campaign kinds by id modulo 4: 0 and 2 are day-parted off for this hour and the next (pacing
// sits them out of every auction), 1 run freely, 3 run freely on a daily budget below any price.
const kindOf = (campaignId: string): number => Number(campaignId.slice(1)) % 4;
const hour = new Date().getUTCHours();
const offNow = Array.from({ length: 24 }, (_, h) => (h === hour || h === (hour + 1) % 24 ? 0 : 1));
let dir: string;
let daemon: Daemon;

beforeAll(async () => {
  dir = tinyModelWithCampaigns((campaign) => {
    const kind = kindOf(campaign.id as string);
    if (kind % 2 === 0) Object.assign(campaign, { pacing: 'even', day_parting: offNow });
    else Object.assign(campaign, { pacing: 'asap', ...(kind === 3 ? { daily_budget_micros: 1000 } : {}) });
  });
  daemon = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: dir });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

const adminFetch = (path: string, method: string, body?: unknown): Promise<Response> =>
  fetch(`${daemon.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

/** Sends the ad's events in order up to its billable one; resolves with that one's charge. */
async function bill(ad: Served, tag: string): Promise<{ chargedMicros: number; capped: boolean }> {
  let answer: Response | undefined;
  for (const type of ['impression', 'click', 'conversion'].slice(0, ['impression', 'click', 'conversion'].indexOf(billable[ad.bidType]) + 1)) {
    answer = await send(daemon.url, { event_id: `${tag}-${type}`, type, token: ad.token });
    expect(answer.status).toBe(200);
  }
  return (await answer!.json()) as { chargedMicros: number; capped: boolean };
}

const served = (tag: string): Promise<Served[]> => serve(daemon.url, 100, tag, 'usb cable');

describe('money through a model swap', () => {
  it('keeps pacing, spend and spent budgets, and charges an event after the swap once, at its price', async () => {
    const before = await served('before');
    expect(before.some((s) => kindOf(s.campaignId) % 2 === 0)).toBe(false);
    const paid = before.find((s) => kindOf(s.campaignId) === 1)!;
    const spent = before.find((s) => kindOf(s.campaignId) === 3)!;
    expect(expectedCharge(spent)).toBeGreaterThan(1000);
    expect(await bill(paid, 'paid')).toMatchObject({ chargedMicros: expectedCharge(paid), capped: false });
    expect(await bill(spent, 'spent')).toMatchObject({ chargedMicros: 1000, capped: true });
    const report = await spend(daemon.url);
    expect(report.campaigns[spent.campaignId]).toMatchObject({ todayMicros: 1000, exhausted: true });

    expect((await adminFetch('/v1/admin/models', 'POST', { dir })).status).toBe(200);
    // Right after the swap, before a pacing tick could redo it: the day-parted campaigns still sit
    // out and the spent one stays out.
    const after = await served('after');
    expect(after.some((s) => kindOf(s.campaignId) % 2 === 0)).toBe(false);
    expect(after.some((s) => s.campaignId === spent.campaignId)).toBe(false);
    expect(await spend(daemon.url)).toEqual(report);

    // One event through the new model moves the spend by exactly its price, once.
    const next = after.find((s) => s.campaignId === paid.campaignId)!;
    const charge = expectedCharge(next);
    expect(await bill(next, 'next')).toMatchObject({ chargedMicros: charge, capped: false });
    const moved = await spend(daemon.url);
    expect(moved.campaigns[paid.campaignId]!.lifetimeMicros - report.campaigns[paid.campaignId]!.lifetimeMicros).toBe(charge);
    expect(moved.campaigns[paid.campaignId]!.todayMicros - report.campaigns[paid.campaignId]!.todayMicros).toBe(charge);

    // A budget an event spends through the new model takes the campaign out of it at once.
    const budget = moved.campaigns[paid.campaignId]!.todayMicros + 1000;
    expect((await adminFetch(`/v1/admin/campaigns/${paid.campaignId}`, 'PATCH', { daily_budget_micros: budget })).status).toBe(200);
    expect(
      await bill(
        after.find((s) => s.campaignId === paid.campaignId && s.token !== next.token)!,
        'last',
      ),
    ).toMatchObject({ chargedMicros: 1000, capped: true });
    expect((await spend(daemon.url)).campaigns[paid.campaignId]).toMatchObject({ todayMicros: budget, exhausted: true });
    expect((await served('later')).some((s) => s.campaignId === paid.campaignId)).toBe(false);
  });
});
