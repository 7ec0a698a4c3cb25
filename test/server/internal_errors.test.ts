// Internal failures, caused for real (the data directory's next ledger segment is /dev/full, so its
// writes fail with ENOSPC; the catalog store's SQLite file is locked by another process), answer
// the same class everywhere: 503 with Retry-After and a body that says what did not happen.
import { existsSync, symlinkSync } from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { adminToken, baseEnv, send, serve } from '../helpers/events';

async function answer(response: Response): Promise<{ status: number; retryAfter: string | null; error: { code: string; message: string } | undefined }> {
  const body = (await response.json()) as { error?: { code: string; message: string } };
  return { status: response.status, retryAfter: response.headers.get('retry-after'), error: body.error };
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((done) => setTimeout(done, 20));
  }
}

describe('internal errors answer 503 internal with Retry-After on every route family', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    // A snapshot after every event, so the ledger moves to segment 2 after the first one.
    daemon = await startDaemon({ ...baseEnv, ADSERVE_LEDGER_SNAPSHOT_EVENTS: '1' });
  });
  afterAll(async () => {
    await daemon.stop();
  });

  it('events: a ledger write that fails is answered 503 internal, and later events 503 ledger_unavailable', async () => {
    symlinkSync('/dev/full', path.join(daemon.dataDir, 'spend.2.log'));
    const [first, second, third] = await serve(daemon.url, 3, 'internal');
    expect((await send(daemon.url, { event_id: 'ok-1', type: 'impression', token: first!.token })).status).toBe(200);
    // The snapshot removes the segment it covers once segment 2 is open.
    await until(() => !existsSync(path.join(daemon.dataDir, 'spend.1.log')));
    expect(await answer(await send(daemon.url, { event_id: 'full-1', type: 'impression', token: second!.token }))).toEqual({
      status: 503,
      retryAfter: '1',
      error: { code: 'internal', message: 'internal error: the event was not recorded; retry' },
    });
    expect(daemon.output()).toMatch(/"msg":"the event was not recorded","err":\{"type":"Error","message":"ENOSPC[^"]*","stack":"Error: ENOSPC[^"]*\\n {4}at /);
    const unavailable = await answer(await send(daemon.url, { event_id: 'full-2', type: 'impression', token: third!.token }));
    expect({ ...unavailable, error: unavailable.error?.code }).toEqual({ status: 503, retryAfter: '1', error: 'ledger_unavailable' });
  });

  it('admin: a campaign edit the catalog store cannot write is answered 503 internal', async () => {
    const [ad] = await serve(daemon.url, 1, 'internal-admin');
    // Another writer holds the database past the store's busy timeout.
    const holder = new Database(path.join(daemon.dataDir, 'catalog.sqlite'));
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const response = await fetch(`${daemon.url}/v1/admin/campaigns/${ad!.campaignId}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ status: 'paused' }),
      });
      expect(await answer(response)).toEqual({
        status: 503,
        retryAfter: '1',
        error: { code: 'internal', message: 'internal error: the change was not recorded; retry' },
      });
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
  });
});
