// The daemon's own stdout, as a collector reads it: every line JSON with pid, hostname, level and
// time; the lines about a request carry its id; an internal error's line carries its stack (the
// failure caused for real: the ledger's next segment is /dev/full); and no user id, event token or
// admin token reaches the output, whatever the requests carried.
import { existsSync, symlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { adminToken, baseEnv, serve } from '../helpers/events';
import { postAd } from '../helpers/requests';

const userId = 'user-logs-secret-4711';
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Line {
  level: string;
  time: string;
  pid: number;
  hostname: string;
  msg: string;
  requestId?: string;
  err?: { type: string; message: string; stack: string; code?: string };
}

const sendEvent = (url: string, event: object, requestId?: string): Promise<Response> =>
  fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(requestId === undefined ? {} : { 'x-request-id': requestId }) },
    body: JSON.stringify(event),
  });

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((done) => setTimeout(done, 20));
  }
}

describe('daemon logs', () => {
  let daemon: Daemon;
  let output = '';
  const tokens: string[] = [];
  const answeredIds: Record<string, string | null> = {};

  beforeAll(async () => {
    // Every ad request logged, and a snapshot after every event so the ledger moves to segment 2 after the first.
    daemon = await startDaemon({ ...baseEnv, ADSERVE_LOG_SAMPLE_RATE: '1', ADSERVE_LEDGER_SNAPSHOT_EVENTS: '1', ADSERVE_LOG_LEVEL: 'debug' });
    symlinkSync('/dev/full', path.join(daemon.dataDir, 'spend.2.log'));
    const json = await fetch(`${daemon.url}/v1/ads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'logs-json-1', placement: 'Search', query: 'running shoes', slots: 3, user: { id: userId } }),
    });
    tokens.push(...((await json.json()) as { ads: Array<{ event_token: string }> }).ads.map((ad) => ad.event_token));
    await (await postAd(daemon.url, encodeAdRequest({ id: 'logs-bin-1', query: 'running shoes', userId }))).arrayBuffer();
    await (await postAd(daemon.url, encodeAdRequest({ id: 'logs-bin-2', query: 'running shoes', slots: 0, userId }))).arrayBuffer();
    const served = await serve(daemon.url, 2, 'logs-served');
    tokens.push(...served.map((ad) => ad.token));

    const first = await sendEvent(daemon.url, { event_id: 'logs-ok-1', type: 'impression', token: tokens[0] }, 'caller-id-1');
    expect(first.status).toBe(200);
    answeredIds.caller = first.headers.get('x-request-id');
    const unnamed = await sendEvent(daemon.url, { event_id: 'logs-bad-1', type: 'impression', token: `${tokens[1]}x` });
    answeredIds.generated = unnamed.headers.get('x-request-id');
    const insane = await sendEvent(daemon.url, { event_id: 'logs-bad-2', type: 'impression', token: 'nope' }, 'has spaces in it');
    answeredIds.insane = insane.headers.get('x-request-id');
    const admin = await fetch(`${daemon.url}/v1/admin/campaigns/${served[0]!.campaignId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', 'x-request-id': 'admin-edit-1' },
      body: JSON.stringify({ status: 'active' }),
    });
    expect(admin.status).toBe(200);

    // The snapshot removes the segment it covers once segment 2 (/dev/full) is open.
    await until(() => !existsSync(path.join(daemon.dataDir, 'spend.1.log')));
    const doomed = await sendEvent(daemon.url, { event_id: 'logs-full-1', type: 'impression', token: served[1]!.token }, 'doomed-event-1');
    expect(doomed.status).toBe(503);
    await daemon.stop();
    output = daemon.output();
  });

  afterAll(async () => {
    await daemon.stop();
  });

  const lines = (): Line[] =>
    output
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Line);

  it('writes only JSON lines, each with pid, hostname, level and time', () => {
    expect(lines().length).toBeGreaterThan(10);
    for (const line of lines()) {
      expect({ pid: line.pid, hostname: line.hostname, level: ['debug', 'info', 'warn', 'error'].includes(line.level) }).toEqual({
        pid: daemon.child.pid,
        hostname: hostname(),
        level: true,
      });
      expect(Number.isNaN(Date.parse(line.time))).toBe(false);
      expect(typeof line.msg).toBe('string');
    }
  });

  it("carries each ad request's AdRequest id, answered and refused, on its line", () => {
    const ids = lines()
      .filter((line) => line.msg === 'ad request')
      .map((line) => line.requestId);
    expect(ids).toEqual(expect.arrayContaining(['logs-json-1', 'logs-bin-1', 'logs-bin-2', 'logs-served-0']));
  });

  it("answers X-Request-Id with a sane caller's id, and a generated one otherwise", () => {
    expect(answeredIds.caller).toBe('caller-id-1');
    expect(answeredIds.generated).toMatch(uuid);
    expect(answeredIds.insane).toMatch(uuid);
  });

  it("writes an internal error's line with the request's id and the error's stack", () => {
    const failed = lines().filter((line) => line.msg === 'the event was not recorded');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'error', requestId: 'doomed-event-1', err: { type: 'Error', code: 'ENOSPC' } });
    expect(failed[0]!.err!.stack).toMatch(/^Error: ENOSPC[^\n]*\n {4}at /);
  });

  it("carries an admin request's id on the lines it causes", () => {
    expect(lines().find((line) => line.msg === 'campaign edited')).toMatchObject({ requestId: 'admin-edit-1' });
  });

  it('lets no user id, event token or admin token into the output', () => {
    expect(tokens.length).toBeGreaterThanOrEqual(3);
    for (const secret of [userId, adminToken, ...tokens]) expect(output.includes(secret), secret).toBe(false);
  });
});
