// Following the change sequence: in-process on SQLite, LISTEN/NOTIFY across store instances on
// PostgreSQL, and catch-up by seq after the listening connection is killed.
import { describe, expect, test } from 'vitest';

import { listenerApplicationName } from '../../src/store/follow';
import type { Change } from '../../src/store/types';
import { ad, advertiser, backends, campaign, useStores } from '../helpers/catalog_store';

const stores = useStores();

/** Collects delivered changes and resolves once `count` have arrived. */
function collector() {
  const received: Change[] = [];
  let waiter: { count: number; resolve: () => void } | undefined;
  return {
    received,
    onChanges(changes: Change[]) {
      received.push(...changes);
      if (waiter && received.length >= waiter.count) waiter.resolve();
    },
    until(count: number, timeoutMs = 5_000): Promise<void> {
      if (received.length >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${received.length} of ${count} changes after ${timeoutMs} ms`)), timeoutMs);
        waiter = { count, resolve: () => (clearTimeout(timer), resolve()) };
      });
    },
  };
}

describe.each(backends)('following changes on %s', (backend) => {
  test('a follower catches up from its seq, then hears each commit once, in order', async () => {
    const store = await stores.open(backend);
    await store.createAdvertiser(advertiser());
    await store.createCampaign(campaign());
    const seen = collector();
    const follower = store.follow({ fromSeq: 1, onChanges: seen.onChanges });
    await seen.until(1);
    expect(seen.received.map((change) => change.id)).toEqual(['c1']);
    const started = Date.now();
    await store.createAd(ad());
    await seen.until(2);
    expect(Date.now() - started).toBeLessThan(1000);
    await Promise.all([1, 2, 3, 4, 5].map((n) => store.createAd(ad(`ad-${n}`))));
    await store.archive('ad', 'ad1');
    await seen.until(8);
    expect(seen.received.map((change) => change.seq)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(seen.received.at(-1)).toMatchObject({ id: 'ad1', op: 'archive', version: 2 });
    await waitFor(async () => follower.seq === 9);
    await follower.close();
  });
});

describe('following changes on postgres across replicas', () => {
  test("a second store on the same database hears the first one's commits", async () => {
    const location = await stores.freshLocation('postgres');
    const url = (location as { url: string }).url;
    const writer = await stores.open('postgres', location);
    const replica = await stores.open('postgres', location);
    const seen = collector();
    const follower = replica.follow({ fromSeq: await replica.currentSeq(), onChanges: seen.onChanges });
    await waitFor(async () => (await listeners(url)).length === 1);
    const started = Date.now();
    await writer.createAdvertiser(advertiser());
    await seen.until(1);
    expect(Date.now() - started).toBeLessThan(1000);
    await writer.createCampaign(campaign());
    await writer.update('campaign', 'c1', { status: 'paused' });
    await seen.until(3);
    expect(seen.received.map(({ seq, id, version }) => [seq, id, version])).toEqual([
      [1, 'adv1', 1],
      [2, 'c1', 1],
      [3, 'c1', 2],
    ]);
    await follower.close();
  });

  test('after its listening connection is killed, a replica reconnects and catches up by seq', async () => {
    const location = await stores.freshLocation('postgres');
    const url = (location as { url: string }).url;
    const writer = await stores.open('postgres', location);
    // A long first reconnect delay, so that the writes below land while nobody listens.
    const replica = await stores.open('postgres', location, { listenerReconnectMs: 1_000, onError: () => undefined });
    const seen = collector();
    const follower = replica.follow({ fromSeq: 0, onChanges: seen.onChanges });
    await waitFor(async () => (await listeners(url)).length === 1);
    await writer.createAdvertiser(advertiser());
    await seen.until(1);
    const [killed] = await listeners(url);
    // The second argument makes the call wait until the backend has exited.
    await stores.postgres().query('select pg_terminate_backend($1, 5000)', [killed]);
    await writer.createCampaign(campaign());
    await writer.createAd(ad());
    expect(seen.received).toHaveLength(1);
    await seen.until(3, 10_000);
    expect(seen.received.map((change) => change.seq)).toEqual([1, 2, 3]);
    const [reconnected] = await listeners(url);
    expect(reconnected).not.toBe(killed);
    // And it listens again: a later commit arrives without any further reconnect.
    await writer.update('ad', 'ad1', { status: 'paused' });
    await seen.until(4);
    await follower.close();
  });
});

/** Backends LISTENing for catalog changes on the database at `url`. */
async function listeners(url: string): Promise<number[]> {
  const database = new URL(url).pathname.slice(1);
  const rows = await stores
    .postgres()
    .query<{ pid: number }>("select pid from pg_stat_activity where application_name = $1 and datname = $2 and query like 'LISTEN%'", [
      listenerApplicationName,
      database,
    ]);
  return rows.map((row) => row.pid);
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
