// The join of a catalog with a model's rows, and the check of an ad against the features the model
// was trained with, on the tiny model.
import { describe, expect, it } from 'vitest';

import { readCatalogFile } from '../../src/catalog/catalog_file';
import { trainedFeaturesMatcher } from '../../src/engine/ad_features';
import { campaignCodes } from '../../src/engine/engine';
import { catalogFromFile, ModelCatalogJoin } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { tinyModelDir } from '../setup/tiny_model';

const model = readModelDir(tinyModelDir);
const seed = readCatalogFile(model.seedCatalog!.file);

describe('joining a catalog with the model rows', () => {
  it('lays the catalog out in the model rows, a model ad it lacks as a retired row under its id', () => {
    const join = new ModelCatalogJoin(model, seed.campaigns);
    const kept = seed.ads.filter((_, i) => i % 7 !== 3);
    const rows = kept.map((ad) => join.add(ad));
    expect(rows).toEqual(kept.map((ad) => seed.ads.indexOf(ad)));
    expect(join.add({ ...seed.ads[0]!, id: 'zzz-not-in-the-model' })).toBeUndefined();
    const { catalog, targeting } = join.finish();
    expect(catalog.size).toBe(model.adIds.length);
    for (let i = 0; i < catalog.size; i++) {
      expect(catalog.adId.at(i)).toBe(model.adIds.at(i));
      expect(catalog.adRetired[i]).toBe(i % 7 === 3 ? 1 : 0);
    }
    expect(catalog.indexOf.get('zzz-not-in-the-model')).toBeUndefined();
    expect(targeting.every(({ ad }) => ad % 7 !== 3)).toBe(true);
    expect(targeting.length).toBeGreaterThan(0);
  });

  it('keeps each trained campaign on its trained code, whatever order the catalog lists campaigns in', () => {
    const trained = model.manifest.campaigns!;
    expect(trained).toHaveLength(seed.campaigns.length);
    const join = new ModelCatalogJoin(model, [{ ...seed.campaigns[0]!, id: 'aaa-created-later' }, ...[...seed.campaigns].reverse()]);
    for (const ad of seed.ads) join.add(ad);
    const codes = campaignCodes(join.finish().catalog, trained);
    trained.forEach((id, code) => expect(codes.get(id)).toBe(code));
    expect(codes.get('aaa-created-later')).toBe(trained.length);
  });

  it('refuses ads out of id order', () => {
    const join = new ModelCatalogJoin(model, seed.campaigns);
    join.add(seed.ads[5]!);
    expect(() => join.add(seed.ads[4]!)).toThrow(/catalog ads must ascend by id/);
  });

  it('gives an untargeted ad of a targeted campaign its campaign rules, and holds out one with too many', () => {
    const campaignRules = [[{ type: 'geo' as const, value: 'US' }]];
    const tooMany = Array.from({ length: 21 }, (_, i) => [{ type: 'exact' as const, value: `word${i}` }]);
    const [first, second] = [seed.ads[0]!, seed.ads[1]!];
    const campaigns = seed.campaigns.map((campaign) => (campaign.id === first.campaign_id ? { ...campaign, targeting: campaignRules } : campaign));
    const join = new ModelCatalogJoin(model, campaigns);
    join.add({ ...first, targeting: [] });
    join.add({ ...second, targeting: tooMany });
    const { catalog, targeting, tooManyRules } = join.finish();
    expect(targeting.find(({ ad }) => ad === 0)?.rules).toEqual(campaignRules);
    expect(tooManyRules).toEqual([second.id]);
    expect(catalog.active[1]).toBe(0);
  });
});

describe("an ad against the model's trained features", () => {
  const trainedAs = trainedFeaturesMatcher(model);
  const campaign = new Map(seed.campaigns.map((c) => [c.id, c]));
  const fields = (ad: (typeof seed.ads)[number]) => ({
    advertiserId: ad.advertiser_id,
    category: ad.category,
    format: ad.format,
    bidType: campaign.get(ad.campaign_id)!.bid_type,
    title: ad.title,
    priceMicros: ad.price_micros,
    landingQuality: ad.landing_quality,
    rating: ad.rating,
  });

  it('matches every ad as the catalog has it, through the catalog rounding', () => {
    expect(seed.ads.filter((ad, i) => !trainedAs(i, fields(ad)))).toEqual([]);
  });

  it('tells an ad changed in any feature the ad tower reads', () => {
    const ad = fields(seed.ads[3]!);
    const otherBidType = ad.bidType === 'CPC' ? 'CPM' : 'CPC';
    for (const changed of [
      { title: `${ad.title} refurbished` },
      { priceMicros: Math.round(ad.priceMicros * 1.01) },
      { rating: ad.rating + 0.01 },
      { landingQuality: ad.landingQuality + 0.001 },
      { bidType: otherBidType },
      { format: ad.format === 'video' ? 'image' : 'video' },
      { category: seed.ads.find((other) => other.category !== ad.category)!.category },
    ])
      expect(trainedAs(3, { ...ad, ...changed }), JSON.stringify(changed)).toBe(false);
  });

  it('serves the tiny catalog file as the model was trained on it', () => {
    const { catalog } = catalogFromFile(model);
    expect(catalog.size).toBe(seed.ads.length);
    expect(Array.from(catalog.adRetired).every((retired) => retired === 0)).toBe(true);
  });
});
