// The ad tower's inputs for ads that were not in the training catalog, computed the way train/
// computes them for an ad without history (train/features.py ad_numeric_raw with zero impressions;
// train/text.py for the title). The manifest carries the vocabularies, hashing and standardisation.
import { fnv1a } from '../catalog/packed_strings';
import type { AdTowerInputs } from './addon';
import type { ModelDir } from './model_dir';

/** The catalog fields of an ad that its embedding depends on. */
export interface NewAdFields {
  advertiserId: string;
  category: string;
  format: string;
  bidType: string;
  title: string;
  priceMicros: number;
  landingQuality: number;
  rating: number;
}

const logit = (p: number): number => Math.log(p) - Math.log1p(-p);

/** Index + 1 of `value` in the vocabulary, 0 when it is not there (the towers' unknown row). */
function vocabularyIndex(vocabulary: readonly string[] | undefined, value: string): number {
  return (vocabulary?.indexOf(value) ?? -1) + 1;
}

/** train/text.py token_buckets: ASCII letters and digits, lower-cased; FNV-1a bucket + 2; 1 = empty; 0 pads. */
export function titleBuckets(title: string, buckets: number, maxTokens: number): number[] {
  const tokens = title.replace(/[A-Z]/g, (c) => c.toLowerCase()).match(/[a-z0-9]+/g) ?? [];
  const ids = tokens.slice(0, maxTokens).map((token) => (fnv1a(token) % (buckets - 2)) + 2);
  if (ids.length === 0) ids.push(1);
  while (ids.length < maxTokens) ids.push(0);
  return ids;
}

/**
 * The ad tower's input rows for new ads, from what the model directory says about its features;
 * keeps only the vocabularies, not the catalog, so a serving model can hold it.
 */
export function adTowerEncoder(model: ModelDir): (ads: readonly NewAdFields[]) => AdTowerInputs {
  const { ad, hashing, priors } = model.manifest.features;
  const advertiserIndex = new Map(model.catalog.advertisers.map((advertiser, index) => [advertiser.id, index + 1]));
  const vocabulary = (name: string): string[] | undefined => ad.categorical.find((column) => column.name === name)?.vocabulary;
  const [categories, formats, bidTypes] = [vocabulary('category'), vocabulary('format'), vocabulary('bid_type')];
  const { buckets, max_tokens: maxTokens } = hashing.title;
  const width = ad.numeric.names.length;
  const unknown = ad.numeric.names.find((name) => !['log_price', 'landing_quality', 'rating', 'ctr_logit', 'cvr_logit', 'log_impressions'].includes(name));
  if (unknown !== undefined) throw new Error(`the model's ad feature ${unknown} is unknown to adserve`);
  return (ads) => {
    const categorical = new Int32Array(ads.length * 4);
    const title = new Int32Array(ads.length * maxTokens);
    const numeric = new Float32Array(ads.length * width);
    ads.forEach((fields, i) => {
      categorical.set(
        [
          advertiserIndex.get(fields.advertiserId) ?? 0,
          vocabularyIndex(categories, fields.category),
          vocabularyIndex(formats, fields.format),
          vocabularyIndex(bidTypes, fields.bidType),
        ],
        i * 4,
      );
      title.set(titleBuckets(fields.title, buckets, maxTokens), i * maxTokens);
      // No history yet: click and conversion rates at the global priors, zero impressions.
      const raw: Record<string, number> = {
        log_price: Math.log(fields.priceMicros / 1e6),
        landing_quality: fields.landingQuality,
        rating: fields.rating,
        ctr_logit: logit(priors.global_ctr),
        cvr_logit: logit(priors.global_cvr),
        log_impressions: 0,
      };
      ad.numeric.names.forEach((name, j) => {
        numeric[i * width + j] = (raw[name]! - ad.numeric.mean[j]!) / ad.numeric.std[j]!;
      });
    });
    return { categorical, title, numeric };
  };
}
