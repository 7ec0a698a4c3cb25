import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { defaults, loadConfig, type Setting, settings } from '../src/config';

function configFile(contents: Record<string, unknown>): { ADSERVE_CONFIG: string } {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'adserve-config-')), 'config.json');
  writeFileSync(file, JSON.stringify(contents));
  return { ADSERVE_CONFIG: file };
}

describe('loadConfig', () => {
  it('uses the defaults when nothing is set', () => {
    expect(loadConfig({})).toEqual(defaults);
  });

  it('lets the environment override a config file, which overrides the defaults', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'adserve-config-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ port: 9000, maxSlots: 4, logLevel: 'warn' }));
    const config = loadConfig({ ADSERVE_CONFIG: file, ADSERVE_PORT: '9100' });
    expect(config.port).toBe(9100);
    expect(config.maxSlots).toBe(4);
    expect(config.logLevel).toBe('warn');
  });

  it.each([
    [{ ADSERVE_PORT: '70000' }, /ADSERVE_PORT must be an integer in 0..65535/],
    [{ ADSERVE_MAX_SLOTS: '0' }, /ADSERVE_MAX_SLOTS must be an integer in 1..100/],
    [{ ADSERVE_WORKER_THREADS: 'two' }, /ADSERVE_WORKER_THREADS must be an integer/],
    [{ ADSERVE_LOG_LEVEL: 'loud' }, /ADSERVE_LOG_LEVEL must be one of debug, info, warn, error/],
    [{ ADSERVE_DEFAULT_TMAX_MS: '2000' }, /defaultTmaxMs must not exceed maxTmaxMs/],
    [{ ADSERVE_CONFIG: '/nonexistent/adserve.json' }, /cannot read config file/],
    [{ ADSERVE_CURRENCY: 'usd' }, /currency must be an ISO 4217 code of three upper-case letters \(got "usd"\)/],
    [{ ADSERVE_CURRENCY: 'EURO' }, /currency must be an ISO 4217 code/],
  ])('refuses %j with a clear message', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads lists, fractions and per-placement rules, and says what is wrong with them', () => {
    const config = loadConfig({
      ADSERVE_BLOCKED_POLICY_FLAGS: 'disapproved, malware',
      ADSERVE_LOG_SAMPLE_RATE: '0.25',
      ADSERVE_PLACEMENTS: JSON.stringify({
        search: { auction: 'vcg', minQualityScore: 0.5, ranking: { ctr: 1, value: 2 } },
        cart: { reserveCpcMicros: 90_000 },
      }),
    });
    expect(config.blockedPolicyFlags).toEqual(['disapproved', 'malware']);
    expect(config.logSampleRate).toBe(0.25);
    expect(config.placements).toEqual({
      search: { auction: 'vcg', minQualityScore: 0.5, ranking: { ctr: 1, cvr: 0, value: 2 } },
      cart: { reserveCpcMicros: 90_000 },
    });
    expect(() => loadConfig({ ADSERVE_LOG_SAMPLE_RATE: '1.5' })).toThrow(/ADSERVE_LOG_SAMPLE_RATE must be a number in 0..1/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"lobby": {}}' })).toThrow(/unknown placement "lobby"/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"search": {"auction": "dutch"}}' })).toThrow(/ADSERVE_PLACEMENTS.search.auction must be one of/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"search": {"ranking": {"ctr": 0}}}' })).toThrow(/needs a positive weight/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"search": {"surge": 2}}' })).toThrow(/unknown setting "surge"/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: 'not json' })).toThrow(/must be a JSON object/);
    expect(() => loadConfig({ ADSERVE_RESERVE_CPC_MICROS: '2000000000000' })).toThrow(/reserveCpcMicros must not exceed maxBidMicros/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"cart": {"reserveCpmMicros": 5000000}}', ADSERVE_MAX_BID_MICROS: '1000000' })).toThrow(
      /placements.cart.reserveCpmMicros must not exceed maxBidMicros/,
    );
    expect(() => loadConfig({ ADSERVE_MAX_BUDGET_MICROS: '9000000000001' })).toThrow(/ADSERVE_MAX_BUDGET_MICROS must be an integer in 1..9000000000000/);
    expect(() => loadConfig({ ADSERVE_EVENT_TOKEN_PREVIOUS_KEYS: 'short' })).toThrow(/eventTokenPreviousKeys/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://db/catalog' })).toThrow(/databaseUrl must be a postgres:\/\/ or postgresql:\/\/ URL/);
    expect(loadConfig({ DATABASE_URL: 'postgresql://adserve:secret@db:5432/catalog' }).databaseUrl).toBe('postgresql://adserve:secret@db:5432/catalog');
    expect(() => loadConfig({ ADSERVE_PORT: '9000', ADSERVE_ADMIN_PORT: '9000' })).toThrow(/adminPort must differ from port/);
    expect(loadConfig({ ADSERVE_PORT: '0', ADSERVE_ADMIN_PORT: '0' }).adminPort).toBe(0);
  });

  it('refuses unknown keys in the config file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'adserve-config-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ prot: 9000 }));
    expect(() => loadConfig({ ADSERVE_CONFIG: file })).toThrow(/unknown key "prot"/);
  });
});

describe('the settings table', () => {
  // Each key's own bounds, from the environment (the error names the variable) and from the file
  // (it names the key); values at the edges may still fail a rule across keys, never their own.
  it.each(Object.entries(settings as Record<string, Setting>))('enforces the bounds of %s with a message naming it', (key, setting) => {
    const refused = (value: unknown, message: string): void => {
      if (typeof value === 'string') expect(() => loadConfig({ [setting.env]: value })).toThrow(`${setting.env} ${message}`);
      expect(() => loadConfig(configFile({ [key]: value }))).toThrow(`${key} ${message}`);
    };
    const accepted = (value: string): void => expect(() => loadConfig({ [setting.env]: value })).not.toThrow(`${setting.env} must`);
    switch (setting.type) {
      case 'integer':
      case 'number': {
        const range = `must be ${setting.type === 'integer' ? 'an integer' : 'a number'} in ${setting.min}..${setting.max}`;
        for (const outside of [setting.min - 1, setting.max + 1]) {
          refused(String(outside), range);
          refused(outside, range);
        }
        if (setting.type === 'integer') refused(String(setting.min + 0.5), range);
        accepted(String(setting.min));
        accepted(String(setting.max));
        break;
      }
      case 'choice':
        refused('nonsense', `must be one of ${setting.values.join(', ')}`);
        for (const value of setting.values) accepted(value);
        break;
      case 'string':
        if (setting.nonEmpty) refused('', 'must be a non-empty string');
        else accepted('');
        expect(() => loadConfig(configFile({ [key]: 5 }))).toThrow(`${key} must be a`);
        break;
      case 'list':
        expect(() => loadConfig(configFile({ [key]: ['a', ''] }))).toThrow(`${key} must be a list of non-empty strings`);
        break;
      case 'numbers': {
        const shape = `must be a list of 1..${setting.maxLength} numbers in ${setting.min}..${setting.max}`;
        refused('', shape);
        refused(`${setting.max},${setting.max + 1}`, shape);
        refused(`${setting.min - 1}`, shape);
        refused(
          Array(setting.maxLength + 1)
            .fill(setting.min)
            .join(','),
          shape,
        );
        if (setting.nonIncreasing) refused(`${setting.min},${setting.max}`, 'must not increase from one entry to the next');
        accepted(`${setting.max},${setting.min}`);
        break;
      }
      case 'placements':
        refused('[]', 'must be an object keyed by placement');
        // A placement's override admits what the global key of the same name admits.
        for (const field of ['reserveCpcMicros', 'reserveCpmMicros', 'reserveCpaMicros', 'minQualityScore'] as const) {
          const { min, max } = settings[field];
          expect(() => loadConfig({ [setting.env]: JSON.stringify({ cart: { [field]: max + 1 } }) })).toThrow(
            `${setting.env}.cart.${field} must be ${settings[field].type === 'integer' ? 'an integer' : 'a number'} in ${min}..${max}`,
          );
        }
        expect(() => loadConfig(configFile({ [key]: { search: { auction: 'dutch' } } }))).toThrow(
          `${key}.search.auction must be one of ${settings.auction.values.join(', ')}`,
        );
        break;
    }
  });

  it('reads the position effects and the lightweight-score weights, which need a positive sum', () => {
    const config = loadConfig({
      ADSERVE_POSITION_EFFECTS: '1, 0.5,0.5,0.1',
      ADSERVE_MAX_SLOTS: '4',
      ADSERVE_LIGHT_CTR_WEIGHT: '2.5',
      ADSERVE_LIGHT_MAX_ECPM_MICROS: '1000',
    });
    expect(config.positionEffects).toEqual([1, 0.5, 0.5, 0.1]);
    expect([config.lightCtrWeight, config.lightMaxEcpmMicros]).toEqual([2.5, 1000]);
    const zero = { ADSERVE_LIGHT_SIMILARITY_WEIGHT: '0', ADSERVE_LIGHT_VALUE_WEIGHT: '0', ADSERVE_LIGHT_CTR_WEIGHT: '0', ADSERVE_LIGHT_QUALITY_WEIGHT: '0' };
    expect(() => loadConfig(zero)).toThrow(/lightweight-score weights .* need a positive sum/);
    expect(loadConfig({ ...zero, ADSERVE_LIGHT_QUALITY_WEIGHT: '0.1' }).lightQualityWeight).toBe(0.1);
  });

  it('needs a positive position effect for every slot a request may ask for, since VCG would sell a slot without one for nothing', () => {
    const message = /positionEffects needs a positive value for each of the maxSlots \(\d+\) positions/;
    expect(() => loadConfig({ ADSERVE_MAX_SLOTS: '11' })).toThrow(message);
    expect(() => loadConfig({ ADSERVE_POSITION_EFFECTS: '1,0.5,0', ADSERVE_MAX_SLOTS: '3' })).toThrow(message);
    expect(loadConfig({ ADSERVE_POSITION_EFFECTS: '1,0.5,0.2', ADSERVE_MAX_SLOTS: '3' }).maxSlots).toBe(3);
    expect(loadConfig({ ADSERVE_POSITION_EFFECTS: '1,0.5,0.2', ADSERVE_MAX_SLOTS: '2' }).positionEffects).toHaveLength(3);
  });
});
