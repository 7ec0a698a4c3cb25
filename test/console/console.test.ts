// The admin console in a real browser (Debian's chromium, driven by playwright-core) over a real
// daemon with spend: sign-in and refusal, campaigns with budget and spend, the pacing and delivery
// charts, pause and resume by keyboard alone, and a phone-width layout. Screenshots go to
// test-results/console/, printed at the end.
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { projectRoot } from '../../src/paths';
import { consolePath } from '../../src/server/console';
import { BidType } from '../../src/protocol/schema';
import { adminToken, baseEnv, send, serve, spend } from '../helpers/events';

const screenshots = path.join(projectRoot, 'test-results', 'console');
const query = 'yoga mat';

async function admin<T>(url: string, route: string, method = 'GET', body?: unknown): Promise<T> {
  const response = await fetch(`${url}${route}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(response.status, route).toBe(200);
  return (await response.json()) as T;
}

const campaignStatus = async (url: string, id: string): Promise<string> => (await admin<{ status: string }>(url, `/v1/admin/campaigns/${id}`)).status;

interface Pacing {
  id: string;
  pacing: string;
  timeZone: string;
  today: string;
  dailyBudgetMicros: number;
  todayMicros: number;
  hoursIntoDay: number;
  participation: number;
  targetMicrosByHour: number[];
}
const pacingOf = async (url: string, id: string): Promise<Pacing> =>
  (await admin<{ campaigns: Pacing[] }>(url, '/v1/admin/pacing')).campaigns.find((each) => each.id === id)!;

async function winningCampaigns(url: string, tag: string): Promise<Set<string>> {
  return new Set((await serve(url, 60, tag, query)).map((served) => served.campaignId));
}

/**
 * Whether `campaign` wins within `rounds` rounds of 60 served ads. The campaigns that spent in setup
 * are ahead of their pacing curve (more so early in the UTC day), so the pacer lets them into only
 * a share of the auctions, which falls as its ticks catch up: one round of six requests may miss.
 */
async function winsWithin(url: string, campaign: string, tag: string, rounds = 20): Promise<boolean> {
  for (let round = 0; round < rounds; round++) {
    if ((await winningCampaigns(url, `${tag}-${round}`)).has(campaign)) return true;
  }
  return false;
}

/** Presses Tab until the focus is on `selector`, as a keyboard user would reach it. */
async function tabTo(page: Page, selector: string): Promise<number> {
  for (let presses = 1; presses <= 40; presses++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(`document.activeElement?.matches(${JSON.stringify(selector)}) ?? false`)) return presses;
  }
  throw new Error(`Tab never reached ${selector}`);
}

describe('admin console', () => {
  let daemon: Daemon;
  let browser: Browser;
  let page: Page;
  let topCampaign: string;
  /** What the events sent in setup add up to: impressions per campaign, micros charged per ad. */
  const impressionsOf = new Map<string, number>();
  const chargedOf = new Map<string, number>();

  beforeAll(async () => {
    [daemon, browser] = await Promise.all([startDaemon(baseEnv), chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })]);
    // Spend to show: every served ad is seen, and its billable event sent.
    const served = await serve(daemon.url, 80, 'console-spend', query);
    for (const [i, ad] of served.entries()) {
      impressionsOf.set(ad.campaignId, (impressionsOf.get(ad.campaignId) ?? 0) + 1);
      for (const type of ['impression', 'click', ...(ad.bidType === BidType.Cpa ? ['conversion'] : [])]) {
        const response = await send(daemon.url, { event_id: `console-${i}-${type}`, type, token: ad.token });
        expect(response.status).toBe(200);
        const { chargedMicros } = (await response.json()) as { chargedMicros: number };
        chargedOf.set(ad.adId, (chargedOf.get(ad.adId) ?? 0) + chargedMicros);
      }
    }
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // A missing element fails its step within seconds rather than at the test's own timeout.
    page.setDefaultTimeout(5000);
    mkdirSync(screenshots, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    expect(await daemon?.stop()).toBe(0);
    console.log(`console screenshots: ${screenshots}`);
  });

  it('gives each campaign its spend today and its pacing curve by local hour (GET /v1/admin/pacing)', async () => {
    const { campaigns } = await admin<{ campaigns: Pacing[] }>(daemon.url, '/v1/admin/pacing');
    expect(campaigns.length).toBe(90);
    const spent = await spend(daemon.url);
    const spenders = campaigns.filter((each) => each.todayMicros > 0);
    expect(spenders.length).toBeGreaterThan(0);
    for (const each of spenders) expect(each.todayMicros).toBe(spent.campaigns[each.id]!.todayMicros);
    const quiet = campaigns.find((each) => each.todayMicros === 0 && each.pacing === 'even')!;
    const budget = (await admin<{ daily_budget_micros: number }>(daemon.url, `/v1/admin/campaigns/${quiet.id}`)).daily_budget_micros;
    expect(quiet).toMatchObject({ timeZone: 'UTC', today: new Date().toISOString().slice(0, 10), dailyBudgetMicros: budget, participation: 1 });
    expect(quiet.hoursIntoDay).toBeCloseTo((Date.now() % 86_400_000) / 3_600_000, 1);
    // Even pacing without day-parting: a straight line from nothing at midnight to the whole budget.
    expect([quiet.targetMicrosByHour.length, quiet.targetMicrosByHour[0], quiet.targetMicrosByHour[12], quiet.targetMicrosByHour[24]]).toEqual([
      25,
      0,
      budget / 2,
      budget,
    ]);
    // Day-parted to the afternoon: flat until noon, then the whole budget over twelve hours.
    await admin(daemon.url, `/v1/admin/campaigns/${quiet.id}`, 'PATCH', { day_parting: [...Array<number>(12).fill(0), ...Array<number>(12).fill(1)] });
    const parted = (await pacingOf(daemon.url, quiet.id)).targetMicrosByHour;
    expect([parted[11], parted[12], parted[18], parted[24]]).toEqual([0, 0, budget / 2, budget]);
    await admin(daemon.url, `/v1/admin/campaigns/${quiet.id}`, 'PATCH', { day_parting: null });
    expect((await pacingOf(daemon.url, quiet.id)).targetMicrosByHour[12]).toBe(budget / 2);
  });

  it('refuses a wrong token with a clear message and keeps the sign-in form', async () => {
    await page.goto(`${daemon.url}${consolePath}`);
    expect(await page.evaluate('document.activeElement?.id')).toBe('token');
    await page.keyboard.type('not-the-token');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#error')).toMatch(/refused this admin token \(401 unauthorized\)/);
    expect(await page.isVisible('#sign-in')).toBe(true);
    expect(await page.isVisible('#views')).toBe(false);
    expect(await page.evaluate("sessionStorage.getItem('adserve.adminToken')")).toBeNull();
  });

  it('says so when the daemon has the admin API disabled (403)', async () => {
    const disabled = await startDaemon({ ADSERVE_MODEL_DIR: '/nonexistent/model' });
    try {
      const other = await browser.newPage();
      await other.goto(`${disabled.url}${consolePath}`);
      await other.fill('#token', 'anything');
      await other.keyboard.press('Enter');
      await expect.poll(() => other.textContent('#error')).toMatch(/^The admin API is disabled on this daemon \(403 admin_disabled\)/);
      await other.close();
    } finally {
      expect(await disabled.stop()).toBe(0);
    }
  });

  it('shows campaigns with budget and spend, the pacing curve and delivery by hour', async () => {
    await page.fill('#token', adminToken);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#campaigns tbody tr');
    expect(await page.isVisible('#error')).toBe(false);
    expect(await page.locator('#campaigns tbody tr').count()).toBe(15);
    await page.click('#show-all');
    expect(await page.locator('#campaigns tbody tr').count()).toBe(90);
    await page.click('#show-all');
    expect(await page.locator('#campaigns tbody tr').count()).toBe(15);
    const top = await page.locator('#campaigns tbody tr').first().locator('th, td').allTextContents();
    topCampaign = top[0]!;
    // Sorted by spend today: the first campaign spent, and its daily budget is shown.
    expect(top.slice(1, 4)).toEqual([expect.stringMatching(/^active/), expect.stringMatching(/^[\d,]+\.\d\d$/), expect.not.stringMatching(/^0\.00$/)]);
    const pacing = await page.getAttribute('#pacing-chart svg', 'aria-label');
    expect(pacing).toMatch(new RegExp(`^Spend against the pacing curve, ${topCampaign}\\. Daily budget [\\d,.]+; [\\d,.]+ spent by hour`));
    expect(await page.locator('#pacing-chart path').evaluateAll((paths) => paths.map((p) => p.getAttribute('class')))).toEqual(['target', 'spent']);
    expect(await page.locator('#pacing-table tbody tr').count()).toBe(25);
    const delivery = await page.getAttribute('#delivery-chart svg', 'aria-label');
    expect(delivery).toMatch(new RegExp(`^Impressions by hour, ${topCampaign}\\. ${impressionsOf.get(topCampaign)} impressions today`));
    expect(await page.locator('#delivery-chart rect').count()).toBeGreaterThan(0);
    const hourly = await page.locator('#delivery-table tbody tr').evaluateAll((trs) => trs.map((tr) => Number(tr.children[1]!.textContent!.replace(/,/g, ''))));
    expect(hourly.reduce((a, b) => a + b, 0)).toBe(impressionsOf.get(topCampaign));
    // Top ads: each with what setup charged it, the most charged first.
    const asMoney = (micros: number): string => (micros / 1e6).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    const shown = await page.locator('#top-ads tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.children[0]!.textContent!, tr.children[4]!.textContent!]));
    expect(shown.length).toBe(Math.min(10, chargedOf.size));
    expect(shown).toEqual(shown.map(([ad]) => [ad, asMoney(chargedOf.get(ad!) ?? 0)]));
    const charges = shown.map(([ad]) => chargedOf.get(ad!) ?? 0);
    expect(charges).toEqual([...charges].sort((a, b) => b - a));
    expect(charges[0]).toBe(Math.max(...chargedOf.values()));
    await page.screenshot({ path: path.join(screenshots, 'desktop.png'), fullPage: true });
  });

  it('pauses a campaign by keyboard alone for the very next ad request, and resumes it', async () => {
    // The top spender that still wins: one whose budget is spent wins nothing to stop.
    const before = await winningCampaigns(daemon.url, 'console-before');
    const listed = await page.locator('#campaigns tbody th').allTextContents();
    const campaign = listed.find((id) => before.has(id))!;
    expect(campaign).toBeDefined();
    const button = `#campaigns button.toggle[data-campaign="${campaign}"]`;
    await page.evaluate('document.activeElement?.blur()');
    await tabTo(page, button);
    expect(await page.getAttribute(button, 'aria-label')).toBe(`Pause campaign ${campaign}`);
    // The keyboard focus is visible: the focus ring the style sheet draws.
    expect(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#status')).toBe(`Campaign ${campaign} paused.`);
    expect(await campaignStatus(daemon.url, campaign)).toBe('paused');
    expect((await winningCampaigns(daemon.url, 'console-paused')).has(campaign)).toBe(false);
    // The focus stays on the campaign's button, now a Resume button.
    expect(await page.evaluate("document.activeElement?.getAttribute('aria-label')")).toBe(`Resume campaign ${campaign}`);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#status')).toBe(`Campaign ${campaign} resumed.`);
    expect(await campaignStatus(daemon.url, campaign)).toBe('active');
    expect(await winsWithin(daemon.url, campaign, 'console-resumed')).toBe(true);
  });

  it('reads at phone width without horizontal scrolling', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await page.click('#refresh');
    await expect.poll(() => page.textContent('#status')).toMatch(/^90 campaigns/);
    expect(await page.evaluate('document.scrollingElement.scrollWidth')).toBeLessThanOrEqual(375);
    await page.screenshot({ path: path.join(screenshots, 'phone.png'), fullPage: true });
  });
});
