// Tokens as an outsider would forge them: every one-character mutation of real tokens, sent on the
// JSON and the FlatBuffer event paths, must be refused and must never move spend.
import { Builder } from 'flatbuffers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { BidType, Event, EventType } from '../../src/protocol/schema';
import { baseEnv, expectedCharge, send, serve, spend } from '../helpers/events';
import { mutations } from '../helpers/tokens';

function binaryEvent(eventId: string, type: 'impression' | 'click', token: Uint8Array): Uint8Array {
  const builder = new Builder(512);
  const id = builder.createString(eventId);
  const tokenOffset = builder.createString(token);
  Event.startEvent(builder);
  Event.addEventId(builder, id);
  Event.addType(builder, type === 'impression' ? EventType.Impression : EventType.Click);
  Event.addToken(builder, tokenOffset);
  Event.finishEventBuffer(builder, Event.endEvent(builder));
  return builder.asUint8Array();
}

const sendBinary = (url: string, eventId: string, type: 'impression' | 'click', token: Uint8Array): Promise<Response> =>
  fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/x-flatbuffers' }, body: binaryEvent(eventId, type, token) });

describe('event token spellings', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon(baseEnv);
  });
  afterAll(async () => {
    await daemon.stop();
  });

  /** Sends every variant as a `type` event on both paths; returns the statuses seen, with their counts. */
  async function sendAll(variants: string[], type: 'impression' | 'click', tag: string): Promise<Map<number, number>> {
    const statuses = new Map<number, number>();
    const count = (status: number): void => void statuses.set(status, (statuses.get(status) ?? 0) + 1);
    for (let i = 0; i < variants.length; i += 16) {
      await Promise.all(
        variants
          .slice(i, i + 16)
          .flatMap((variant, j) => [
            send(daemon.url, { event_id: `${tag}-json-${i + j}`, type, token: variant }).then((response) => count(response.status)),
            sendBinary(daemon.url, `${tag}-fb-${i + j}`, type, Buffer.from(variant, 'utf8')).then((response) => count(response.status)),
          ]),
      );
    }
    return statuses;
  }

  it('refuses every mutation of a real token on both paths, and spend never moves', async () => {
    const [cpc] = (await serve(daemon.url, 50, 'spell')).filter((served) => served.bidType === BidType.Cpc);
    expect(cpc).toBeDefined();
    // A few substitutes per position keep this to a few thousand requests; the unit test tries the whole alphabet.
    const variants = mutations(cpc!.token, 'Aa_=');
    const before = await spend(daemon.url);
    expect([...(await sendAll(variants, 'impression', 'imp')).keys()]).toEqual([422]);
    // A byte-order mark or a stray non-ASCII byte in front, as raw bytes on the FlatBuffer path.
    for (const [i, prefix] of [[0xef, 0xbb, 0xbf], [0x80], [0xc0, 0xae]].entries()) {
      expect((await sendBinary(daemon.url, `raw-${i}`, 'impression', Buffer.concat([Buffer.from(prefix), Buffer.from(cpc!.token)]))).status).toBe(422);
    }
    expect(await spend(daemon.url)).toEqual(before);

    // With the genuine impression recorded, no re-spelling can bill the click, and the genuine click bills once.
    expect((await send(daemon.url, { event_id: 'genuine-impression', type: 'impression', token: cpc!.token })).status).toBe(200);
    const seen = await spend(daemon.url);
    expect([...(await sendAll(variants, 'click', 'click')).keys()]).toEqual([422]);
    expect(await spend(daemon.url)).toEqual(seen);
    const click = await sendBinary(daemon.url, 'genuine-click', 'click', Buffer.from(cpc!.token));
    expect(await click.json()).toMatchObject({ status: 'recorded', chargedMicros: expectedCharge(cpc!) });
    const billed = await spend(daemon.url);
    expect(billed.campaigns[cpc!.campaignId]!.lifetimeMicros - (seen.campaigns[cpc!.campaignId]?.lifetimeMicros ?? 0)).toBe(expectedCharge(cpc!));
    expect([...(await sendAll(variants.slice(0, 200), 'click', 'again')).keys()]).toEqual([422]);
    expect((await send(daemon.url, { event_id: 'genuine-click-again', type: 'click', token: cpc!.token })).status).toBe(409);
    expect(await spend(daemon.url)).toEqual(billed);
  });
});

describe('event token key rotation', () => {
  it('opens tokens of a rotated-out key after a restart, and seals new ones with the new key', async () => {
    const oldKey = 'rotation-old-key-0123456789abcdef0123';
    const newKey = 'rotation-new-key-0123456789abcdef0123';
    const first = await startDaemon({ ...baseEnv, ADSERVE_EVENT_TOKEN_KEY: oldKey });
    const [before] = await serve(first.url, 1, 'rotate-old');
    await first.stop();
    const second = await startDaemon({
      ...baseEnv,
      ADSERVE_DATA_DIR: first.dataDir,
      ADSERVE_EVENT_TOKEN_KEY: newKey,
      ADSERVE_EVENT_TOKEN_PREVIOUS_KEYS: oldKey,
    });
    try {
      const [after] = await serve(second.url, 1, 'rotate-new');
      expect(after!.token.split('.')[1]).not.toBe(before!.token.split('.')[1]);
      for (const [name, served] of [
        ['old', before!],
        ['new', after!],
      ] as const) {
        expect((await send(second.url, { event_id: `rotate-${name}`, type: 'impression', token: served.token })).status).toBe(200);
      }
    } finally {
      await second.stop();
    }
    // Once the old key is dropped its tokens no longer open.
    const third = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: first.dataDir, ADSERVE_EVENT_TOKEN_KEY: newKey });
    try {
      const response = await send(third.url, { event_id: 'rotate-dropped', type: 'impression', token: before!.token });
      expect(response.status).toBe(422);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/unknown key/);
    } finally {
      await third.stop();
    }
  });
});
