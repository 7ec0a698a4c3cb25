// Checks untrusted create and update bodies before the store writes them. Every refusal is a
// StoreValidationError naming the field; every accepted body comes back normalised (defaults filled,
// keys in a fixed order), so that equal requests hash equally for idempotency.
import { createHash } from 'node:crypto';

import { type Config, placementNames } from '../config';
import { DeviceType } from '../protocol/schema';
import type { TargetingCriterion } from '../catalog/catalog_json';
import { isKnownTimeZone } from '../catalog/time_zone';
import { StoreValidationError } from './errors';
import type { AdRow, AdvertiserRow, CampaignRow, RowMeta, TargetingRules } from './types';

/** Bounds that keep every amount, and every sum of spend in nanos, an exact integer. */
export type StoreLimits = Pick<Config, 'maxBidMicros' | 'maxBudgetMicros'>;

type Fields<Row> = Omit<Row, keyof RowMeta | 'id'> & { id: string | undefined; status: 'active' | 'paused' };
export type AdvertiserFields = Fields<AdvertiserRow>;
export type CampaignFields = Fields<CampaignRow>;
/** advertiser_id is the campaign's, filled in by the store. */
export type AdFields = Omit<Fields<AdRow>, 'advertiser_id'> & { advertiser_id: string | undefined };

const targetingTypes: ReadonlySet<TargetingCriterion['type']> = new Set([
  'exact',
  'phrase',
  'broad',
  'negative',
  'geo',
  'device',
  'audience',
  'category',
  'product',
  'placement',
] as const);
const maxRules = 256;
const maxCriteria = 256;
const maxText = 2048;
const idPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const localTimePattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/;

const fail = (field: string, message: string): never => {
  throw new StoreValidationError(field, message);
};

/** The names the engine's placement and device criteria match (case aside); any other would never match, and the engine refuses it. */
const criterionNames: Partial<Record<TargetingCriterion['type'], readonly string[]>> = {
  placement: placementNames,
  device: Object.keys(DeviceType)
    .filter((name) => Number.isNaN(Number(name)) && name !== 'Unknown')
    .map((name) => name.toLowerCase()),
};
const keywordTypes: ReadonlySet<TargetingCriterion['type']> = new Set(['exact', 'phrase', 'broad', 'negative']);

/** Refuses here what the engine would refuse when the ad is embedded, so the caller hears of it. */
function checkCriterionValue(type: TargetingCriterion['type'], value: string, field: string): void {
  const names = criterionNames[type];
  if (names && !names.includes(value.toLowerCase())) fail(field, `must be one of ${names.join(', ')} for a ${type} criterion`);
  // Keywords match by their ASCII letters and digits; one without any would match nothing.
  if (keywordTypes.has(type) && !/[A-Za-z0-9]/.test(value)) fail(field, 'a keyword needs at least one letter or digit');
}

class Body {
  readonly record: Record<string, unknown>;

  /** `path` prefixes a nested object's fields in errors ("frequency_cap."). */
  constructor(
    input: unknown,
    allowed: readonly string[],
    private readonly path = '',
  ) {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) fail(path.replace(/\.$/, '') || 'body', 'must be a JSON object');
    this.record = input as Record<string, unknown>;
    for (const key of Object.keys(this.record)) if (!allowed.includes(key)) fail(this.at(key), `unknown field; allowed: ${allowed.join(', ')}`);
  }

  private at(key: string): string {
    return this.path + key;
  }

  /** Null and absent are the same: the field is not set. */
  private value(key: string): unknown {
    const value = this.record[key];
    return value === null ? undefined : value;
  }

  id(key: string): string | undefined {
    const value = this.value(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !idPattern.test(value))
      fail(this.at(key), 'must be 1-128 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit');
    return value as string;
  }

  requiredId(key: string): string {
    return this.id(key) ?? fail(this.at(key), 'is required');
  }

  text(key: string, fallback?: string): string {
    const value = this.value(key);
    if (value === undefined) return fallback ?? fail(this.at(key), 'is required');
    if (typeof value !== 'string' || value.length > maxText) fail(this.at(key), `must be a string of at most ${maxText} characters`);
    if (fallback === undefined && (value as string).trim() === '') fail(this.at(key), 'must not be empty');
    return value as string;
  }

  optionalText(key: string): string | null {
    return this.value(key) === undefined ? null : this.text(key, '');
  }

  oneOf<T extends string>(key: string, values: readonly T[], fallback?: T): T {
    const value = this.value(key);
    if (value === undefined) return fallback ?? fail(this.at(key), 'is required');
    if (!values.includes(value as T)) fail(this.at(key), `must be one of ${values.join(', ')} (got ${JSON.stringify(value)})`);
    return value as T;
  }

  integer(key: string, min: number, max: number, unit?: string): number {
    const value = this.value(key);
    if (value === undefined) fail(this.at(key), 'is required');
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
      fail(this.at(key), `must be an integer in ${min}..${max}${unit ? ` (${unit})` : ''}`);
    return value as number;
  }

  optionalInteger(key: string, min: number, max: number, unit?: string): number | null {
    return this.value(key) === undefined ? null : this.integer(key, min, max, unit);
  }

  real(key: string, min: number, max: number, fallback: number, minExclusive = false): number {
    const value = this.value(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value > max || (minExclusive ? value <= min : value < min))
      fail(this.at(key), `must be a number in ${minExclusive ? '(' : '['}${min}, ${max}]`);
    return value as number;
  }

  strings(key: string): string[] {
    const value = this.value(key);
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.length > maxCriteria) fail(this.at(key), `must be an array of at most ${maxCriteria} strings`);
    (value as unknown[]).forEach((item, i) => {
      if (typeof item !== 'string' || item.length === 0 || item.length > maxText) fail(`${this.at(key)}[${i}]`, 'must be a non-empty string');
    });
    return [...(value as string[])];
  }

  timeZone(key: string): string {
    const value = this.value(key);
    if (value === undefined) return 'UTC';
    if (typeof value !== 'string') return fail(this.at(key), 'must be an IANA time zone name');
    return isKnownTimeZone(value) ? value : fail(this.at(key), `unknown time zone ${JSON.stringify(value)}`);
  }

  localTime(key: string): string | null {
    const value = this.value(key);
    if (value === undefined) return null;
    const match = typeof value === 'string' ? localTimePattern.exec(value) : null;
    if (!match) return fail(this.at(key), 'must be a wall-clock time "YYYY-MM-DDTHH:MM[:SS]" in the campaign\'s time_zone, without an offset');
    const [year, month, day, hour, minute, second] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number, number, number];
    const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
    if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59)
      fail(this.at(key), `${JSON.stringify(value)} is not a valid date and time`);
    return date.toISOString().slice(0, 19);
  }

  targeting(key: string): TargetingRules | null {
    const value = this.value(key);
    if (value === undefined) return null;
    if (!Array.isArray(value) || value.length > maxRules)
      return fail(this.at(key), `must be an array (rules, any of which matches) of at most ${maxRules} arrays of criteria`);
    const rules = (value as unknown[]).map((rule, r) => {
      if (!Array.isArray(rule) || rule.length === 0 || rule.length > maxCriteria)
        fail(`${this.at(key)}[${r}]`, `must be a non-empty array (criteria, all of which must hold) of at most ${maxCriteria} criteria`);
      return (rule as unknown[]).map((criterion, c): TargetingCriterion => {
        const field = `${key}[${r}][${c}]`;
        if (typeof criterion !== 'object' || criterion === null || Array.isArray(criterion)) fail(field, 'must be an object {type, value, not?}');
        const { type, value: criterionValue, not, ...rest } = criterion as Record<string, unknown>;
        const extra = Object.keys(rest)[0];
        if (extra !== undefined) fail(`${field}.${extra}`, 'unknown field; allowed: type, value, not');
        if (!targetingTypes.has(type as TargetingCriterion['type'])) fail(`${field}.type`, `must be one of ${[...targetingTypes].join(', ')}`);
        if (typeof criterionValue !== 'string' || criterionValue.length === 0 || criterionValue.length > maxText)
          fail(`${field}.value`, 'must be a non-empty string');
        if (not !== undefined && typeof not !== 'boolean') fail(`${field}.not`, 'must be a boolean');
        checkCriterionValue(type as TargetingCriterion['type'], criterionValue as string, `${field}.value`);
        const checked: TargetingCriterion = { type: type as TargetingCriterion['type'], value: criterionValue as string };
        if (not === true) checked.not = true;
        return checked;
      });
    });
    return rules.length === 0 ? null : rules;
  }
}

const creatableStatus = ['active', 'paused'] as const;

function status(body: Body): 'active' | 'paused' {
  if (body.record.status === 'archived') fail('status', 'rows are archived by archive (DELETE), not by an update');
  return body.oneOf('status', creatableStatus, 'active');
}

export function advertiserFields(input: unknown): AdvertiserFields {
  const body = new Body(input, ['id', 'name', 'category', 'status']);
  return { id: body.id('id'), name: body.text('name'), category: body.optionalText('category'), status: status(body) };
}

export function campaignFields(input: unknown, limits: StoreLimits): CampaignFields {
  const body = new Body(input, [
    'id',
    'advertiser_id',
    'name',
    'bid_type',
    'bid_micros',
    'daily_budget_micros',
    'lifetime_budget_micros',
    'pacing',
    'frequency_cap',
    'time_zone',
    'day_parting',
    'flight_start',
    'flight_end',
    'targeting',
    'status',
  ]);
  const fields: CampaignFields = {
    id: body.id('id'),
    advertiser_id: body.requiredId('advertiser_id'),
    name: body.text('name', ''),
    bid_type: body.oneOf('bid_type', ['CPC', 'CPM', 'CPA']),
    bid_micros: body.integer('bid_micros', 1, limits.maxBidMicros, 'maxBidMicros'),
    daily_budget_micros: body.integer('daily_budget_micros', 0, limits.maxBudgetMicros, 'maxBudgetMicros; 0: no daily budget'),
    lifetime_budget_micros: body.optionalInteger('lifetime_budget_micros', 0, limits.maxBudgetMicros, 'maxBudgetMicros'),
    pacing: body.oneOf('pacing', ['even', 'asap'], 'even'),
    frequency_cap: frequencyCap(body.record.frequency_cap),
    time_zone: body.timeZone('time_zone'),
    day_parting: dayParting(body.record.day_parting),
    flight_start: body.localTime('flight_start'),
    flight_end: body.localTime('flight_end'),
    targeting: body.targeting('targeting'),
    status: status(body),
  };
  if (fields.flight_start !== null && fields.flight_end !== null && fields.flight_end <= fields.flight_start)
    fail('flight_end', `must be after flight_start (${fields.flight_start})`);
  return fields;
}

function frequencyCap(value: unknown): CampaignFields['frequency_cap'] {
  if (value === undefined || value === null) return null;
  const cap = new Body(value, ['impressions', 'window_seconds'], 'frequency_cap.');
  return { impressions: cap.integer('impressions', 1, 1_000_000), window_seconds: cap.integer('window_seconds', 1, 90 * 86_400) };
}

function dayParting(value: unknown): number[] | null {
  if (value === undefined || value === null) return null;
  if (
    !Array.isArray(value) ||
    value.length !== 24 ||
    value.some((w) => typeof w !== 'number' || !Number.isFinite(w) || w < 0) ||
    !value.some((w: number) => w > 0)
  ) {
    fail('day_parting', '24 non-negative hourly weights, not all 0');
  }
  return [...(value as number[])];
}

export function adFields(input: unknown, limits: StoreLimits): AdFields {
  const body = new Body(input, [
    'id',
    'campaign_id',
    'advertiser_id',
    'product_id',
    'category',
    'format',
    'title',
    'keywords',
    'landing_url',
    'image_url',
    'price_micros',
    'landing_quality',
    'rating',
    'targeting',
    'policy_flags',
    'status',
  ]);
  return {
    id: body.id('id'),
    campaign_id: body.requiredId('campaign_id'),
    advertiser_id: body.id('advertiser_id'),
    product_id: body.text('product_id'),
    category: body.text('category'),
    format: body.text('format', 'product_card'),
    title: body.text('title'),
    keywords: body.strings('keywords'),
    landing_url: body.text('landing_url'),
    image_url: body.text('image_url', ''),
    price_micros:
      body.record.price_micros === undefined || body.record.price_micros === null
        ? 0
        : body.integer('price_micros', 0, limits.maxBudgetMicros, 'maxBudgetMicros'),
    // An ad new to the model has no measured landing quality yet: the middle of the scale.
    landing_quality: body.real('landing_quality', 0, 1, 0.5, true),
    rating: body.real('rating', 0, 5, 0),
    targeting: body.targeting('targeting'),
    policy_flags: body.strings('policy_flags'),
    status: status(body),
  };
}

/** Hash of a normalised body: the same request always hashes the same, whatever its key order or defaults. */
export function requestHash(fields: object): string {
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}
