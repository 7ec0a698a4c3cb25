// Both example clients cover the whole schema: each writes every AdRequest and Event field and
// reads every AdResponse field, so a field added to schemas/ fails here until the clients carry it.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { adDecisionOf, encodeEvent } from '../../clients/typescript/adserve_client';
import { projectRoot } from '../../src/paths';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { encodeAdResponse } from '../../src/protocol/encode_response';
import { BidType, NoFillReason, ResponseStatus } from '../../src/protocol/schema';
import { absentFields, camelCase, everyFieldRequest, everyFieldSpec, runPython, schemaTables } from '../helpers/clients';

const everyFieldEvent = { event_id: 'coverage-event', type: 'conversion', token: 'v2.k.token', timestamp_ms: 1_764_590_400_000, value_micros: 25_000_000 };

async function python(script: string, input: unknown): Promise<string> {
  const run = await runPython(['-c', script], JSON.stringify(input));
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return run.stdout.trim();
}

describe('client field coverage', () => {
  const tables = schemaTables();

  it('reads as many fields per table from schemas/*.fbs as flatc generated', () => {
    expect([...tables.keys()].sort()).toEqual(['Ad', 'AdRequest', 'AdResponse', 'Creative', 'Device', 'Event', 'Geo', 'Regs', 'StageTiming', 'User']);
    for (const [table, fields] of tables) {
      const generated = readFileSync(
        path.join(projectRoot, 'build', 'gen', 'ts', 'adserve', 'fb', `${table.replace(/(?<=.)([A-Z])/g, '-$1').toLowerCase()}.ts`),
        'utf8',
      );
      expect(Number(/startObject\((\d+)\)/.exec(generated)![1]), table).toBe(fields.length);
    }
  });

  it('the Python client writes every AdRequest field', async () => {
    const encoded = await python(
      'import base64, json, sys\nfrom adserve_client import AdRequest, encode_ad_request\nprint(base64.b64encode(encode_ad_request(AdRequest.from_dict(json.load(sys.stdin)))).decode())',
      everyFieldRequest,
    );
    expect(absentFields(Buffer.from(encoded, 'base64'), 'AdRequest')).toEqual([]);
  });

  it('the TypeScript client writes every AdRequest field', () => {
    expect(absentFields(encodeAdRequest(everyFieldSpec('coverage')), 'AdRequest')).toEqual([]);
  });

  it('both clients write every Event field', async () => {
    const encoded = await python(
      'import base64, json, sys\nfrom adserve_client import Event, encode_event\nprint(base64.b64encode(encode_event(Event(**json.load(sys.stdin)))).decode())',
      everyFieldEvent,
    );
    expect(absentFields(Buffer.from(encoded, 'base64'), 'Event')).toEqual([]);
    const e = everyFieldEvent;
    const typescript = encodeEvent({ eventId: e.event_id, type: 'conversion', token: e.token, timestampMs: e.timestamp_ms, valueMicros: e.value_micros });
    expect(absentFields(typescript, 'Event')).toEqual([]);
  });

  it("the Python client's request, response and event classes name every field of their table", async () => {
    const fields = JSON.parse(
      await python(
        'import dataclasses, json, sys\nimport adserve_client\nprint(json.dumps({name: [f.name for f in dataclasses.fields(getattr(adserve_client, name))] for name in json.load(sys.stdin)}))',
        [...tables.keys()],
      ),
    ) as Record<string, string[]>;
    for (const [table, schemaFields] of tables) expect(fields[table], table).toEqual(schemaFields.map((field) => field.name));
  });

  it('the TypeScript client reads every AdResponse field', () => {
    const decision = adDecisionOf(
      decodeAdResponse(
        encodeAdResponse({
          requestId: 'coverage',
          status: ResponseStatus.Ok,
          ads: [
            {
              slot: 0,
              adId: 'a',
              campaignId: 'c',
              advertiserId: 'v',
              productId: 'p',
              title: 't',
              imageUrl: 'i',
              landingUrl: 'l',
              bidType: BidType.Cpc,
              bidMicros: 1,
              priceMicros: 1,
              pCtr: 0.1,
              pCvr: 0.1,
              ecpmMicros: 1,
              quality: 1,
              eventToken: 'v2.k.token',
            },
          ],
          timings: [{ stage: 'parse', nanos: 1n }],
          currency: 'EUR',
          noFillReason: NoFillReason.BelowFloor,
        }),
      ),
    );
    const names = (table: string): string[] =>
      tables
        .get(table)!
        .map((field) => camelCase(field.name))
        .sort();
    expect(Object.keys(decision).sort()).toEqual(names('AdResponse'));
    expect(Object.keys(decision.ads[0]!).sort()).toEqual(names('Ad'));
    expect(Object.keys(decision.ads[0]!.creative!).sort()).toEqual(names('Creative'));
    expect(Object.keys(decision.timings[0]!).sort()).toEqual(names('StageTiming'));
  });
});
