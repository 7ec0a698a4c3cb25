// The admin console: a static page that holds no data of its own. Every figure comes from the
// admin API, called with the bearer token the operator typed in, which is kept in sessionStorage
// (gone when the tab closes) and sent on nothing but those calls.
import { barChart, lineChart } from './chart.js';

const tokenKey = 'adserve.adminToken';
const byId = (id) => document.getElementById(id);
// The table lists the top spenders until the operator asks for every campaign.
const shortList = 15;
const state = { campaigns: [], pacing: new Map(), selected: undefined, showAll: false };

class AdminError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** One call to the admin API; a refusal rejects with the status and the API's own message. */
async function api(path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(tokenKey) ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await response.json().catch(() => undefined);
  if (!response.ok) throw new AdminError(response.status, json?.error?.code ?? 'error', json?.error?.message ?? response.statusText);
  return json;
}

/** What the operator reads for a failed call; a refused token also signs out. */
function explain(error) {
  if (!(error instanceof AdminError)) return `The daemon could not be reached: ${error.message}`;
  if (error.status === 401) {
    signOut();
    return 'The daemon refused this admin token (401 unauthorized). Check the token and sign in again.';
  }
  if (error.status === 403) return `The admin API is disabled on this daemon (403 ${error.code}): ${error.message}.`;
  return `The daemon answered ${error.status} ${error.code}: ${error.message}.`;
}

function showError(message) {
  const box = byId('error');
  box.textContent = message;
  box.hidden = message === '';
}

const say = (message) => (byId('status').textContent = message);

const money = (micros) => (micros / 1e6).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
/** Axis ticks: round amounts need no cents. */
const moneyTick = (micros) => (micros / 1e6).toLocaleString('en-US', { maximumFractionDigits: 2 });
const count = (n) => n.toLocaleString('en-US');

/** The curve's target at a fractional local hour, between its hourly points. */
function targetAt(pacing, hours) {
  const hour = Math.min(23, Math.floor(hours));
  const [from, to] = [pacing.targetMicrosByHour[hour], pacing.targetMicrosByHour[hour + 1]];
  return from + (to - from) * Math.min(1, hours - hour);
}

function cell(text, label) {
  const td = document.createElement('td');
  td.textContent = text;
  if (label) td.dataset.label = label;
  return td;
}

function toggleButton(campaign) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'toggle';
  button.dataset.campaign = campaign.id;
  const pausing = campaign.status === 'active';
  button.textContent = pausing ? 'Pause' : 'Resume';
  button.setAttribute('aria-label', `${pausing ? 'Pause' : 'Resume'} campaign ${campaign.id}`);
  button.addEventListener('click', () => void toggle(campaign.id));
  return button;
}

function campaignRow(campaign) {
  const pacing = state.pacing.get(campaign.id);
  const row = document.createElement('tr');
  row.dataset.campaign = campaign.id;
  const name = document.createElement('th');
  name.scope = 'row';
  name.textContent = campaign.id;
  const curve = pacing && pacing.dailyBudgetMicros > 0 ? money(targetAt(pacing, pacing.hoursIntoDay)) : 'no daily budget';
  const status = campaign.exhausted ? `${campaign.status}, budget spent` : campaign.status;
  row.append(
    name,
    cell(status, 'Status'),
    cell(campaign.daily_budget_micros > 0 ? money(campaign.daily_budget_micros) : 'none', 'Daily budget'),
    cell(money(campaign.todayMicros), 'Spent today'),
    cell(curve, 'Curve by now'),
    cell(money(campaign.lifetimeMicros), 'Lifetime spend'),
  );
  const action = cell('', 'Action');
  action.append(toggleButton(campaign));
  row.append(action);
  return row;
}

function renderCampaigns() {
  const shown = state.showAll ? state.campaigns : state.campaigns.slice(0, shortList);
  byId('campaigns').tBodies[0].replaceChildren(...shown.map(campaignRow));
  const more = byId('show-all');
  more.hidden = state.campaigns.length <= shortList;
  more.textContent = state.showAll ? `Show the ${shortList} top spenders` : `Show all ${state.campaigns.length} campaigns`;
  const select = byId('campaign-select');
  select.replaceChildren(
    ...state.campaigns.map((campaign) => {
      const option = document.createElement('option');
      option.value = campaign.id;
      option.textContent = `${campaign.id} (${money(campaign.todayMicros)} today)`;
      return option;
    }),
  );
  select.value = state.selected;
}

function tableRows(tableId, rows) {
  byId(tableId).tBodies[0].replaceChildren(
    ...rows.map((values) => {
      const row = document.createElement('tr');
      row.append(...values.map((value) => cell(value)));
      return row;
    }),
  );
}

/** Hourly report rows of the campaign today, in its local hours (as reports count them), as 24 buckets. */
async function hourlyDelivery(pacing) {
  const day = pacing.today;
  const query = new URLSearchParams({ by: 'campaign', granularity: 'hour', from: day, to: day, campaign_id: pacing.id });
  const { rows } = await api(`/v1/admin/reports?${query}`);
  const hours = Array.from({ length: 24 }, () => ({ impressions: 0, clicks: 0, conversions: 0, spend_micros: 0 }));
  for (const row of rows) {
    if (!row.period.startsWith(day)) continue;
    const bucket = hours[Number(row.period.slice(11, 13))];
    for (const key of Object.keys(bucket)) bucket[key] += row[key] ?? 0;
  }
  return hours;
}

function renderPacing(pacing, hours) {
  const budget = pacing.dailyBudgetMicros;
  const now = Math.min(24, pacing.hoursIntoDay);
  const spentByHour = [];
  if (hours) {
    let total = 0;
    spentByHour.push([0, 0]);
    for (let hour = 0; hour < Math.floor(now); hour++) spentByHour.push([hour + 1, (total += hours[hour].spend_micros)]);
  }
  spentByHour.push([now, pacing.todayMicros]);
  const summary =
    budget > 0
      ? `Daily budget ${money(budget)}; ${money(pacing.todayMicros)} spent by hour ${now.toFixed(1)}, where the curve aims at ${money(targetAt(pacing, now))}.`
      : `No daily budget, so no curve; ${money(pacing.todayMicros)} spent today.`;
  const chart = lineChart({
    title: `Spend against the pacing curve, ${pacing.id}`,
    summary,
    lines: [
      { className: 'target', points: budget > 0 ? pacing.targetMicrosByHour.map((value, hour) => [hour, value]) : [] },
      { className: 'spent', points: spentByHour },
    ],
    marker: [now, pacing.todayMicros],
    formatY: moneyTick,
  });
  const legend = document.createElement('figcaption');
  legend.innerHTML = '<span class="key target">curve target</span> <span class="key spent">spent so far</span>';
  byId('pacing-chart').replaceChildren(chart, legend);
  const spentAt = (hour) => spentByHour.find(([h]) => h === hour)?.[1];
  tableRows(
    'pacing-table',
    pacing.targetMicrosByHour.map((value, hour) => [`${hour}:00`, money(value), spentAt(hour) === undefined ? '' : money(spentAt(hour))]),
  );
}

function renderDelivery(campaignId, hours) {
  const impressions = hours.map((hour) => hour.impressions);
  const total = impressions.reduce((a, b) => a + b, 0);
  const busiest = impressions.indexOf(Math.max(...impressions));
  const chart = barChart({
    title: `Impressions by hour, ${campaignId}`,
    summary: total > 0 ? `${count(total)} impressions today, most at ${busiest}:00 local time (${count(impressions[busiest])}).` : 'No impressions today.',
    values: impressions,
    formatY: count,
  });
  byId('delivery-chart').replaceChildren(chart);
  tableRows(
    'delivery-table',
    hours.flatMap((hour, index) =>
      hour.impressions + hour.clicks + hour.conversions > 0 ? [[`${index}:00`, count(hour.impressions), count(hour.clicks), money(hour.spend_micros)]] : [],
    ),
  );
}

async function showSelected() {
  const id = state.selected;
  const pacing = state.pacing.get(id);
  if (!pacing) return;
  let hours;
  try {
    hours = await hourlyDelivery(pacing);
    byId('delivery-note').textContent = '';
  } catch (error) {
    byId('delivery-note').textContent = `Delivery by hour is unavailable: ${explain(error)}`;
  }
  renderPacing(pacing, hours);
  byId('delivery-details').hidden = !hours;
  if (hours) renderDelivery(id, hours);
  else byId('delivery-chart').replaceChildren();
}

async function showTopAds() {
  // Reports count each campaign's own local days; the UTC date is the one day all share for the most part.
  const day = new Date().toISOString().slice(0, 10);
  try {
    const { rows } = await api(`/v1/admin/reports?${new URLSearchParams({ by: 'ad', granularity: 'day', from: day, to: day })}`);
    const top = rows.sort((a, b) => b.spend_micros - a.spend_micros || b.impressions - a.impressions).slice(0, 10);
    tableRows(
      'top-ads',
      top.map((row) => [
        row.ad_id,
        count(row.impressions),
        count(row.clicks),
        row.ctr === null ? '' : `${(row.ctr * 100).toFixed(1)}%`,
        money(row.spend_micros),
      ]),
    );
    byId('top-ads-note').textContent = top.length === 0 ? 'No ad has delivered today.' : '';
  } catch (error) {
    byId('top-ads-note').textContent = `Top ads are unavailable: ${explain(error)}`;
  }
}

async function load() {
  say('Loading…');
  try {
    const [{ campaigns }, pacing] = await Promise.all([api('/v1/admin/campaigns'), api('/v1/admin/pacing')]);
    state.pacing = new Map(pacing.campaigns.map((each) => [each.id, each]));
    state.campaigns = campaigns.sort((a, b) => b.todayMicros - a.todayMicros || a.id.localeCompare(b.id));
    if (!state.pacing.has(state.selected)) state.selected = state.campaigns[0]?.id;
    showError('');
    showSignedIn(true);
    renderCampaigns();
    await Promise.all([showSelected(), showTopAds()]);
    say(`${state.campaigns.length} campaigns, as of ${new Date().toLocaleTimeString('en-GB')}.`);
  } catch (error) {
    say('');
    showError(explain(error));
  }
}

/** Pauses an active campaign or resumes a paused one; the button keeps the focus. */
async function toggle(campaignId) {
  const campaign = state.campaigns.find((each) => each.id === campaignId);
  const status = campaign.status === 'active' ? 'paused' : 'active';
  const row = byId('campaigns').querySelector(`tr[data-campaign="${CSS.escape(campaignId)}"]`);
  const button = row.querySelector('button.toggle');
  button.disabled = true;
  try {
    Object.assign(campaign, await api(`/v1/admin/campaigns/${encodeURIComponent(campaignId)}`, { method: 'PATCH', body: { status } }));
    const fresh = campaignRow(campaign);
    row.replaceWith(fresh);
    fresh.querySelector('button.toggle').focus();
    showError('');
    say(`Campaign ${campaignId} ${campaign.status === 'paused' ? 'paused' : 'resumed'}.`);
  } catch (error) {
    button.disabled = false;
    showError(explain(error));
  }
}

function showSignedIn(signedIn) {
  byId('sign-in').hidden = signedIn;
  byId('signed-in').hidden = !signedIn;
  byId('views').hidden = !signedIn;
}

function signOut() {
  sessionStorage.removeItem(tokenKey);
  showSignedIn(false);
  byId('token').focus();
}

byId('sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = byId('token');
  sessionStorage.setItem(tokenKey, input.value);
  input.value = '';
  void load();
});
byId('sign-out').addEventListener('click', () => {
  signOut();
  say('Signed out.');
});
byId('refresh').addEventListener('click', () => void load());
byId('show-all').addEventListener('click', () => {
  state.showAll = !state.showAll;
  renderCampaigns();
});
byId('campaign-select').addEventListener('change', (event) => {
  state.selected = event.target.value;
  void showSelected();
});

if (sessionStorage.getItem(tokenKey)) void load();
else byId('token').focus();
