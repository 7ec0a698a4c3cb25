// GET /v1/admin/reports (docs/reports.md): report cells summed per campaign, ad, advertiser or
// placement and per local hour or day, as JSON or CSV. Billing counters come from the spend store,
// where they moved in the step that charged; decision counters from the decision path's counters.
import { RequestError } from '../errors';
import { microsOfNanos } from '../money/amounts';
import { counterIndex, type Counters, counterNames, parseCellKey } from '../money/report_cells';
import { type AdminRoute, sendJson } from './admin_route';
import { toRefusal } from './refusal';

const groupings = { campaign: 'campaign_id', ad: 'ad_id', advertiser: 'advertiser_id', placement: 'placement' } as const;
type Grouping = keyof typeof groupings;
const parameters = ['by', 'granularity', 'from', 'to', 'campaign_id', 'advertiser_id', 'format'];
const dayMs = 86_400_000;

export interface ReportQuery {
  by: Grouping;
  granularity: 'hour' | 'day';
  fromDay: number;
  toDay: number;
  campaignId: string | undefined;
  advertiserId: string | undefined;
  format: 'json' | 'csv';
}

const invalid = (parameter: string, message: string): RequestError => new RequestError(422, 'invalid_parameter', `${parameter}: ${message}`, parameter);

/** The day number (days since 1970-01-01) of a YYYY-MM-DD date. */
function dayOfDate(parameter: string, text: string | undefined): number {
  if (text === undefined) throw invalid(parameter, 'required, a date YYYY-MM-DD');
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const ms = match ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) : NaN;
  if (!match || new Date(ms).toISOString().slice(0, 10) !== text) throw invalid(parameter, `${JSON.stringify(text)} is not a date YYYY-MM-DD`);
  return ms / dayMs;
}

function choice<T extends string>(parameter: string, text: string | undefined, values: readonly T[], fallback: T): T {
  if (text === undefined) return fallback;
  if (!(values as readonly string[]).includes(text)) throw invalid(parameter, `must be one of ${values.join(', ')}`);
  return text as T;
}

export function parseReportQuery(query: string, accept: string, retentionDays: number): ReportQuery {
  const params = new URLSearchParams(query);
  const seen = new Map<string, string>();
  for (const [name, value] of params) {
    if (!parameters.includes(name)) throw invalid(name, `unknown parameter (known: ${parameters.join(', ')})`);
    if (seen.has(name)) throw invalid(name, 'given more than once');
    seen.set(name, value);
  }
  const fromDay = dayOfDate('from', seen.get('from'));
  const toDay = dayOfDate('to', seen.get('to'));
  if (toDay < fromDay) throw invalid('to', 'comes before from');
  if (toDay - fromDay + 1 > retentionDays) throw invalid('from', `the range spans more than the ${retentionDays} days reports are kept`);
  const id = (parameter: string): string | undefined => {
    const value = seen.get(parameter);
    if (value === '') throw invalid(parameter, 'must not be empty');
    return value;
  };
  return {
    by: choice('by', seen.get('by'), Object.keys(groupings) as Grouping[], 'campaign'),
    granularity: choice('granularity', seen.get('granularity'), ['hour', 'day'], 'day'),
    fromDay,
    toDay,
    campaignId: id('campaign_id'),
    advertiserId: id('advertiser_id'),
    format: choice('format', seen.get('format'), ['json', 'csv'], accept.includes('text/csv') ? 'csv' : 'json'),
  };
}

type Figure = number | null;
const ratio = (numerator: number, denominator: number): Figure => (denominator === 0 ? null : numerator / denominator);

/** A row's figures from its summed counters (docs/reports.md defines each). */
function figures(c: Counters): Record<string, Figure> {
  const at = (name: (typeof counterNames)[number]): number => c[counterIndex[name]]!;
  const spendMicros = microsOfNanos(at('spendNanos'));
  const won = at('wonCpc') + at('wonCpm') + at('wonCpa');
  return {
    impressions: at('impressions'),
    clicks: at('clicks'),
    conversions: at('conversions'),
    spend_micros: spendMicros,
    ctr: ratio(at('clicks'), at('impressions')),
    cvr: ratio(at('conversions'), at('clicks')),
    ecpm_micros: ratio(spendMicros * 1000, at('impressions')),
    avg_cpc_micros: ratio(spendMicros, at('clicks')),
    avg_cpa_micros: ratio(spendMicros, at('conversions')),
    auctions_entered: at('entered'),
    auctions_won: won,
    win_rate: ratio(won, at('entered')),
    avg_clearing_price_cpc_micros: ratio(at('clearingCpcMicros'), at('wonCpc')),
    avg_clearing_price_cpm_micros: ratio(at('clearingCpmMicros'), at('wonCpm')),
    avg_clearing_price_cpa_micros: ratio(at('clearingCpaMicros'), at('wonCpa')),
    served_value_micros: microsOfNanos(at('servedValueNanos')),
    billed_value_micros: microsOfNanos(at('billedValueNanos')),
    served_unbilled_micros: microsOfNanos(at('servedValueNanos') - at('billedValueNanos')),
  };
}

export interface Report {
  rows: Array<Record<string, string | Figure>>;
  totals: Record<string, Figure>;
}

const periodOf = (hour: number, granularity: 'hour' | 'day'): string =>
  granularity === 'day' ? new Date(Math.floor(hour / 24) * dayMs).toISOString().slice(0, 10) : `${new Date(hour * 3_600_000).toISOString().slice(0, 13)}:00`;

/** Sums cells into rows of (group, time zone, period), in that order, and their totals. */
export function buildReport(query: ReportQuery, sources: Array<Iterable<[string, Counters]>>): Report {
  const groupField = groupings[query.by];
  const rows = new Map<string, { group: string; timeZone: string; period: string; counters: Counters }>();
  const total = new Array<number>(counterNames.length).fill(0);
  for (const cells of sources) {
    for (const [text, counters] of cells) {
      const key = parseCellKey(text);
      const day = Math.floor(key.hour / 24);
      if (day < query.fromDay || day > query.toDay) continue;
      if (query.campaignId !== undefined && key.campaignId !== query.campaignId) continue;
      if (query.advertiserId !== undefined && key.advertiserId !== query.advertiserId) continue;
      const group = { campaign: key.campaignId, ad: key.adId, advertiser: key.advertiserId, placement: key.placement }[query.by];
      const period = periodOf(key.hour, query.granularity);
      const rowKey = JSON.stringify([group, key.timeZone, period]);
      let row = rows.get(rowKey);
      if (!row) rows.set(rowKey, (row = { group, timeZone: key.timeZone, period, counters: new Array<number>(counterNames.length).fill(0) }));
      counters.forEach((amount, i) => {
        row.counters[i]! += amount;
        total[i]! += amount;
      });
    }
  }
  const ordered = [...rows.values()].sort((a, b) => cmp(a.group, b.group) || cmp(a.timeZone, b.timeZone) || cmp(a.period, b.period));
  return {
    rows: ordered.map((row) => ({ [groupField]: row.group, period: row.period, time_zone: row.timeZone, ...figures(row.counters) })),
    totals: figures(total),
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function csvField(value: string | Figure | undefined): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The rows as CSV with a header line; the columns are the JSON rows' keys, in the same order. */
export function reportCsv(query: ReportQuery, report: Report): string {
  const columns = [groupings[query.by], 'period', 'time_zone', ...Object.keys(report.totals)];
  const lines = [columns.join(','), ...report.rows.map((row) => columns.map((column) => csvField(row[column])).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}

export const reportRoutes: readonly AdminRoute[] = [
  {
    method: 'get',
    pattern: '/v1/admin/reports',
    handle: ({ exchange, req, deps }) => {
      let query: ReportQuery;
      try {
        query = parseReportQuery(req.getQuery() ?? '', req.getHeader('accept'), deps.decision.config.reportRetentionDays);
      } catch (error) {
        return exchange.fail(toRefusal(error, 'the report was not built', deps.log));
      }
      const { fromDay, toDay } = query;
      const counters = deps.decision.reportCounters;
      // Decision counters first: in fleet mode they are flushed into the very cells read next.
      (async () => {
        const decided = counters ? await counters.reportCells(fromDay, toDay) : [];
        return [await deps.money.store.reportCells(fromDay, toDay), decided];
      })().then(
        (sources) => {
          const report = buildReport(query, sources);
          if (query.format === 'csv') exchange.send(200, 'text/csv; charset=utf-8', reportCsv(query, report));
          else sendJson(exchange, report);
        },
        (error: unknown) => exchange.fail(toRefusal(error, 'the report was not built', deps.log)),
      );
    },
  },
];
