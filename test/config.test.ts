import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { defaults, loadConfig } from '../src/config';

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
  ])('refuses %j with a clear message', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads lists, fractions and per-placement rules, and says what is wrong with them', () => {
    const config = loadConfig({
      ADSERVE_BLOCKED_POLICY_FLAGS: 'disapproved, malware',
      ADSERVE_LOG_SAMPLE_RATE: '0.25',
      ADSERVE_PLACEMENTS: JSON.stringify({ search: { auction: 'vcg', minQualityScore: 0.5, ranking: { ctr: 1, value: 2 } }, cart: { reserveCpcMicros: 90_000 } }),
    });
    expect(config.blockedPolicyFlags).toEqual(['disapproved', 'malware']);
    expect(config.logSampleRate).toBe(0.25);
    expect(config.placements).toEqual({ search: { auction: 'vcg', minQualityScore: 0.5, ranking: { ctr: 1, cvr: 0, value: 2 } }, cart: { reserveCpcMicros: 90_000 } });
    expect(() => loadConfig({ ADSERVE_LOG_SAMPLE_RATE: '1.5' })).toThrow(/ADSERVE_LOG_SAMPLE_RATE must be a number in 0..1/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"lobby": {}}' })).toThrow(/unknown placement "lobby"/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"search": {"auction": "dutch"}}' })).toThrow(/ADSERVE_PLACEMENTS.search.auction must be one of/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"search": {"ranking": {"ctr": 0}}}' })).toThrow(/needs a positive weight/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"search": {"surge": 2}}' })).toThrow(/unknown setting "surge"/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: 'not json' })).toThrow(/must be a JSON object/);
    expect(() => loadConfig({ ADSERVE_RESERVE_CPC_MICROS: '2000000000000' })).toThrow(/reserveCpcMicros must not exceed maxBidMicros/);
    expect(() => loadConfig({ ADSERVE_PLACEMENTS: '{"cart": {"reserveCpmMicros": 5000000}}', ADSERVE_MAX_BID_MICROS: '1000000' })).toThrow(/placements.cart.reserveCpmMicros must not exceed maxBidMicros/);
    expect(() => loadConfig({ ADSERVE_MAX_BUDGET_MICROS: '9000000000001' })).toThrow(/ADSERVE_MAX_BUDGET_MICROS must be an integer in 1..9000000000000/);
    expect(() => loadConfig({ ADSERVE_EVENT_TOKEN_PREVIOUS_KEYS: 'short' })).toThrow(/eventTokenPreviousKeys/);
  });

  it('refuses unknown keys in the config file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'adserve-config-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ prot: 9000 }));
    expect(() => loadConfig({ ADSERVE_CONFIG: file })).toThrow(/unknown key "prot"/);
  });
});
