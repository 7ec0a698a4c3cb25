// Serving ads and sending their events to a running daemon, for the money tests.
import path from 'node:path';

import { expect } from 'vitest';

import { readCatalogFile, writeCatalogFile } from '../../src/catalog/catalog_file';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { BidType } from '../../src/protocol/schema';
import { tinyModelDir } from '../setup/tiny_model';
import { rehashManifestFile } from '../../src/engine/model_dir';
import { copyOfTinyModel } from './models';
import { postAd } from './requests';

export const tokenKey = 'events-test-token-key-0123456789abcdef';
export const adminToken = 'events-admin';
export const baseEnv = { ADSERVE_MODEL_DIR: tinyModelDir, ADSERVE_EVENT_TOKEN_KEY: tokenKey, ADSERVE_ADMIN_TOKEN: adminToken };

export interface Served {
  token: string;
  adId: string;
  campaignId: string;
  bidType: BidType;
  priceMicros: number;
  pCtr: number;
}

export async function serve(url: string, count: number, tag: string, query = 'running shoes', test = false): Promise<Served[]> {
  const served: Served[] = [];
  for (let i = 0; served.length < count; i++) {
    const ad = decodeAdResponse(
      new Uint8Array(await (await postAd(url, encodeAdRequest({ id: `${tag}-${i}`, query, slots: 10, userId: `u${i}`, test }))).arrayBuffer()),
    );
    for (let s = 0; s < ad.adsLength(); s++) {
      const winner = ad.ads(s)!;
      served.push({
        token: winner.eventToken()!,
        adId: winner.adId()!,
        campaignId: winner.campaignId()!,
        bidType: winner.bidType(),
        priceMicros: Number(winner.priceMicros()),
        pCtr: winner.pctr(),
      });
    }
  }
  return served.slice(0, count);
}

export const send = (url: string, event: object): Promise<Response> =>
  fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) });

export async function spend(
  url: string,
): Promise<{ events: number; campaigns: Record<string, { lifetimeMicros: number; todayMicros: number; exhausted: boolean }> }> {
  return (await fetch(`${url}/v1/admin/spend`, { headers: { authorization: `Bearer ${adminToken}` } })).json() as never;
}

/** A copy of the tiny model directory with every campaign of its catalog edited. */
export function tinyModelWithCampaigns(edit: (campaign: Record<string, unknown>) => void): string {
  return tinyModelWithCatalog((catalog) => catalog.campaigns.forEach(edit));
}

/** A copy of the tiny model directory with its catalog edited. */
export function tinyModelWithCatalog(edit: (catalog: { campaigns: Array<Record<string, unknown>>; ads: Array<Record<string, unknown>> }) => void): string {
  const dir = copyOfTinyModel('model');
  const catalogPath = path.join(dir, 'catalog.jsonl');
  const catalog = readCatalogFile(catalogPath);
  edit(catalog as unknown as Parameters<typeof edit>[0]);
  writeCatalogFile(catalogPath, catalog);
  rehashManifestFile(dir, 'catalog.jsonl');
  return dir;
}

export const billable = { [BidType.Cpc]: 'click', [BidType.Cpm]: 'impression', [BidType.Cpa]: 'conversion' } as const;
export const expectedCharge = (s: Served): number => (s.bidType === BidType.Cpm ? s.priceMicros / 1000 : s.priceMicros);

/**
 * Checks a daemon started with a 1 s attribution window: a conversion right after its click is
 * charged, one that comes later is refused and charged nothing.
 */
export async function checkAttributionWindow(url: string, tag: string): Promise<void> {
  const [early, late] = (await serve(url, 200, tag, 'yoga mat')).filter((s) => s.bidType === BidType.Cpa);
  expect(late).toBeDefined();
  for (const [name, ad] of [
    ['early', early!],
    ['late', late!],
  ] as const) {
    for (const type of ['impression', 'click']) expect((await send(url, { event_id: `${tag}-${name}-${type}`, type, token: ad.token })).status).toBe(200);
  }
  const onTime = await send(url, { event_id: `${tag}-early-conversion`, type: 'conversion', token: early!.token });
  expect(await onTime.json()).toMatchObject({ chargedMicros: expectedCharge(early!) });
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const tooLate = await send(url, { event_id: `${tag}-late-conversion`, type: 'conversion', token: late!.token });
  expect(tooLate.status).toBe(422);
  expect(await tooLate.json()).toMatchObject({ error: { code: 'outside_attribution_window' } });
}
