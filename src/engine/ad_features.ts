// The ad tower's inputs for ads that were not in the training catalog, computed the way train/
// computes them for an ad without history (train/features.py ad_numeric_raw with zero impressions;
// train/text.py for the title). The manifest carries the vocabularies, hashing and standardisation.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { fnv1a } from '../catalog/packed_strings';
import type { AdTowerInputs } from './addon';
import { readFloats } from './engine';
import type { ModelDir, TensorEntry } from './model_dir';

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

type RowEncoder = (fields: NewAdFields, row: number, out: AdTowerInputs) => void;

/** Writes one ad's ad-tower inputs into row `row` of `out`, from what the model directory says about its features. */
function rowEncoder(model: ModelDir): { encode: RowEncoder; width: number; maxTokens: number } {
  const { ad, hashing, priors } = model.manifest.features;
  const vocabulary = (name: string): string[] | undefined => ad.categorical.find((column) => column.name === name)?.vocabulary;
  const advertisers = vocabulary('advertiser');
  if (!advertisers) throw new Error("the model's manifest has no advertiser vocabulary");
  const advertiserIndex = new Map(advertisers.map((id, index) => [id, index + 1]));
  const [categories, formats, bidTypes] = [vocabulary('category'), vocabulary('format'), vocabulary('bid_type')];
  const { buckets, max_tokens: maxTokens } = hashing.title;
  const width = ad.numeric.names.length;
  const unknown = ad.numeric.names.find((name) => !['log_price', 'landing_quality', 'rating', 'ctr_logit', 'cvr_logit', 'log_impressions'].includes(name));
  if (unknown !== undefined) throw new Error(`the model's ad feature ${unknown} is unknown to adserve`);
  const encode: RowEncoder = (fields, i, out) => {
    out.categorical.set(
      [
        advertiserIndex.get(fields.advertiserId) ?? 0,
        vocabularyIndex(categories, fields.category),
        vocabularyIndex(formats, fields.format),
        vocabularyIndex(bidTypes, fields.bidType),
      ],
      i * 4,
    );
    out.title.set(titleBuckets(fields.title, buckets, maxTokens), i * maxTokens);
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
      out.numeric[i * width + j] = (raw[name]! - ad.numeric.mean[j]!) / ad.numeric.std[j]!;
    });
  };
  return { encode, width, maxTokens };
}

/**
 * The ad tower's input rows for new ads, from what the model directory says about its features;
 * keeps only the vocabularies, not the catalog, so a serving model can hold it.
 */
export function adTowerEncoder(model: ModelDir): (ads: readonly NewAdFields[]) => AdTowerInputs {
  const { encode, width, maxTokens } = rowEncoder(model);
  return (ads) => {
    const out = { categorical: new Int32Array(ads.length * 4), title: new Int32Array(ads.length * maxTokens), numeric: new Float32Array(ads.length * width) };
    ads.forEach((fields, i) => encode(fields, i, out));
    return out;
  };
}

/**
 * The numeric features an ad's catalog fields set (the others are history, which a trained ad has
 * and a new one does not), each with the difference, in its own units, that catalog rounding
 * explains: train/ computes features from unrounded values, and the catalog keeps prices in micros,
 * landing quality to 4 decimals and ratings to 2.
 */
const contentNumeric: Record<string, number> = { log_price: 2e-6, landing_quality: 1e-4, rating: 0.0051 };

function int64Column(file: string, entry: TensorEntry): BigInt64Array {
  const bytes = readFileSync(file);
  if (bytes.length !== entry.shape.reduce((a, b) => a * b, 1) * 8) throw new Error(`${file} does not match its manifest shape`);
  return new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
}

/**
 * Whether an ad, as the catalog has it now, has the features the model was trained with for row
 * `row` (ad_categorical, ad_title and the content part of ad_numeric): then the row's embedding is
 * still the ad's. The tensors are read at the first call.
 */
export function trainedFeaturesMatcher(model: ModelDir): (row: number, fields: NewAdFields) => boolean {
  const { encode, width, maxTokens } = rowEncoder(model);
  const scratch = { categorical: new Int32Array(4), title: new Int32Array(maxTokens), numeric: new Float32Array(width) };
  const { names, std } = model.manifest.features.ad.numeric;
  const columns = names.flatMap((name, j) => (contentNumeric[name] !== undefined ? [{ j, tolerance: contentNumeric[name] / std[j]! }] : []));
  let trained: { categorical: BigInt64Array; title: BigInt64Array; numeric: Float32Array } | undefined;
  return (row, fields) => {
    trained ??= {
      categorical: int64Column(path.join(model.dir, 'ad_categorical.i64'), model.manifest.files['ad_categorical.i64']!),
      title: int64Column(path.join(model.dir, 'ad_title.i64'), model.manifest.files['ad_title.i64']!),
      numeric: readFloats(path.join(model.dir, 'ad_numeric.f32'), model.manifest.files['ad_numeric.f32']!),
    };
    encode(fields, 0, scratch);
    for (let k = 0; k < 4; k++) if (BigInt(scratch.categorical[k]!) !== trained.categorical[row * 4 + k]) return false;
    for (let k = 0; k < maxTokens; k++) if (BigInt(scratch.title[k]!) !== trained.title[row * maxTokens + k]) return false;
    return columns.every(({ j, tolerance }) => Math.abs(scratch.numeric[j]! - trained!.numeric[row * width + j]!) <= tolerance);
  };
}
