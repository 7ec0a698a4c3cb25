import { hostname } from 'node:os';

import { describe, expect, it } from 'vitest';

import { createLogger } from '../src/log';

function capture(level: 'debug' | 'info' = 'debug'): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger(level, (line) => lines.push(line)) };
}

describe('createLogger', () => {
  it('writes one JSON line per call with time, level, pid, hostname and the message before the fields', () => {
    const { lines, log } = capture('info');
    log.debug('below the level');
    log.info('started', { ready: true });
    log.error('failed', { err: Object.assign(new Error('disk full'), { code: 'ENOSPC' }) });
    expect(lines).toHaveLength(2);
    expect(lines.every((line) => line.endsWith('\n') && line.indexOf('\n') === line.length - 1)).toBe(true);
    const [started, failed] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(started).toEqual({
      level: 'info',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      pid: process.pid,
      hostname: hostname(),
      msg: 'started',
      ready: true,
    });
    expect(lines[0]).toMatch(/"msg":"started","ready":true/);
    expect(failed).toMatchObject({
      level: 'error',
      msg: 'failed',
      err: { type: 'Error', message: 'disk full', code: 'ENOSPC', stack: expect.stringMatching(/^Error: disk full\n {4}at /) },
    });
  });

  it("carries a child's fields on every line", () => {
    const { lines, log } = capture();
    const request = log.child({ requestId: 'r-7' });
    request.info('one');
    request.warn('two', { n: 2 });
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ requestId: 'r-7', msg: 'one', level: 'info' }),
      expect.objectContaining({ requestId: 'r-7', msg: 'two', level: 'warn', n: 2 }),
    ]);
  });

  it('redacts user ids, event tokens, Authorization headers and consent strings, at the top or one object down', () => {
    const { lines, log } = capture();
    const secrets = {
      userId: 'secret-user-1',
      user_id: 'secret-user-2',
      token: 'secret-token-1',
      eventToken: 'secret-token-2',
      event_token: 'secret-token-3',
      authorization: 'Bearer secret-admin-1',
      consent: 'secret-consent-1',
      user: { id: 'secret-user-3', consent: 'secret-consent-2' },
      headers: { authorization: 'Bearer secret-admin-2' },
      event: { token: 'secret-token-4' },
      ad: { event_token: 'secret-token-5' },
    };
    log.info('request', secrets);
    log.child({ userId: 'secret-user-4' }).info('child');
    expect(lines.join('')).not.toMatch(/secret-/);
    const line = JSON.parse(lines[0]!) as typeof secrets;
    expect([
      line.userId,
      line.token,
      line.authorization,
      line.user.id,
      line.user.consent,
      line.headers.authorization,
      line.event.token,
      line.ad.event_token,
    ]).toEqual(Array(8).fill('[redacted]'));
  });
});
