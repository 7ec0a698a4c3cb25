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

  it('refuses unknown keys in the config file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'adserve-config-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ prot: 9000 }));
    expect(() => loadConfig({ ADSERVE_CONFIG: file })).toThrow(/unknown key "prot"/);
  });
});
