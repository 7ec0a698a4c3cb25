// Everything a loaded model serves with: the native engine, the catalog columns, the calibration
// maps and the ads' historical rates (the fallback when a request is answered degraded).
import { availableParallelism } from 'node:os';
import path from 'node:path';

import type { AuctionRules } from '../auction/auction';
import { FrequencyCaps } from '../money/frequency_caps';
import type { Money } from '../money/money';
import type { Pacer } from '../money/pacing';
import { type Catalog, type CatalogOptions, setCampaign } from '../catalog/catalog';
import type { CatalogCampaign } from '../catalog/catalog_json';
import { type CalibrationParams, validateCalibration } from '../calibration/calibrate';
import { type Config, placementNames, type PlacementName, type PlacementRules } from '../config';
import { Placement } from '../protocol/schema';
import { adTowerEncoder, type NewAdFields } from './ad_features';
import type { AdTowerInputs, NativeEngine } from './addon';
import type { LoadProgress } from './load_progress';
import { type AdHistory, adHistory, adPrior, campaignCodes, type EngineSettings, type LightWeights, openEngine } from './engine';
import { catalogFromFile, type ServingCatalog } from './model_catalog';
import { type ModelDir, verifyModelFiles } from './model_dir';
import { projectRoot } from '../paths';

export interface Serving {
  engine: NativeEngine;
  catalog: Catalog;
  history: AdHistory;
  calibration: { ctr: CalibrationParams; cvr: CalibrationParams };
  modelVersion: string;
  /** SHA-256 of the model's model.pt, as its manifest lists it. */
  modelSha256: string;
  modelDir: string;
  /** The process-wide money owner this model's engine is attached to (shared by every model). */
  money: Money;
  /** money.pacer, which the exclusions stage reads. */
  pacer: Pacer;
  frequency: FrequencyCaps;
  /** Each campaign's code in the engine's exclusions (AdKeys.campaign); campaigns created while serving take the next. */
  campaignCode: Map<string, number>;
  /** Auction rules per Placement (enum value; Unknown has the global ones), before the request's own slots, floor and auction type apply. */
  rules: AuctionRules[];
  /** Weights of the engine's lightweight score, for recomputing ads' priors after an edit. */
  light: LightWeights;
  /** The ad tower's inputs for ads this model was not trained on. */
  encodeAds: (ads: readonly NewAdFields[]) => AdTowerInputs;
  /** Click and conversion rates of an ad without history. */
  globalRates: { ctr: number; cvr: number };
}

const placementOf: Record<PlacementName, Placement> = {
  search: Placement.Search,
  product_page: Placement.ProductPage,
  category: Placement.Category,
  homepage: Placement.Homepage,
  cart: Placement.Cart,
};

/** The global auction settings with each placement's overrides (config.placements) applied. */
export function placementRules(config: Config): AuctionRules[] {
  const rules: AuctionRules[] = [];
  const forPlacement = (placement: PlacementRules = {}): AuctionRules => ({
    mechanism: placement.auction ?? config.auction,
    slots: 1,
    floorCpmMicros: 0,
    reserveMicros: [
      placement.reserveCpcMicros ?? config.reserveCpcMicros,
      placement.reserveCpmMicros ?? config.reserveCpmMicros,
      placement.reserveCpaMicros ?? config.reserveCpaMicros,
    ],
    incrementMicros: config.priceIncrementMicros,
    positionEffects: config.positionEffects,
    minQuality: placement.minQualityScore ?? config.minQualityScore,
    ...(placement.ranking ? { ranking: placement.ranking } : {}),
  });
  rules[Placement.Unknown] = forPlacement();
  for (const name of placementNames) rules[placementOf[name]] = forPlacement(config.placements[name]);
  return rules;
}

export function lightWeights(config: Config): LightWeights {
  return {
    similarity: config.lightSimilarityWeight,
    value: config.lightValueWeight,
    ctr: config.lightCtrWeight,
    quality: config.lightQualityWeight,
    maxEcpmMicros: config.lightMaxEcpmMicros,
  };
}

export function engineSettings(config: Config): EngineSettings {
  return {
    index: {
      kind: config.indexKind,
      ivfScan: config.ivfScan,
      ...(config.nprobe > 0 ? { nprobe: config.nprobe } : {}),
      ...(config.nlist > 0 ? { nlist: config.nlist } : {}),
    },
    ...(config.indexCacheDir !== '' ? { indexCacheDir: path.resolve(projectRoot, config.indexCacheDir) } : {}),
    fusion: config.fusion,
    fusionPrecision: config.fusionPrecision,
    ...(config.fusionKernel !== '' ? { fusionKernel: config.fusionKernel } : {}),
    annCandidates: config.annCandidates,
    keywordCandidates: config.keywordCandidates,
    scoreCandidates: config.scoreCandidates,
    batching: {
      maxBatch: config.maxBatch,
      maxDelayUs: config.maxDelayUs,
      queueCapacity: config.queueCapacity,
      threads: config.batchThreads === 0 ? availableParallelism() : config.batchThreads,
    },
    light: lightWeights(config),
  };
}

export interface OpenServingOptions {
  /** At start-up, hears of each stage. */
  progress?: LoadProgress;
  /** The catalog in the model's rows, once its files are verified; default: the model's own catalog.jsonl. */
  catalog?: (model: ModelDir, options: CatalogOptions) => Promise<ServingCatalog> | ServingCatalog;
}

/** Opens `model` for serving. */
export async function openServing(model: ModelDir, config: Config, money: Money, options: OpenServingOptions = {}): Promise<Serving> {
  const { progress } = options;
  await verifyModelFiles(model, progress);
  validateCalibration(model.manifest.calibration.ctr);
  validateCalibration(model.manifest.calibration.cvr);
  progress?.enter('building catalog');
  const loaded = await (options.catalog ?? catalogFromFile)(model, { blockedPolicyFlags: config.blockedPolicyFlags, limits: config });
  const { catalog } = loaded;
  const history = adHistory(model);
  const settings = engineSettings(config);
  progress?.enter('loading model and index');
  const engine = await openEngine(model, loaded, history, settings);
  money.attach(catalog, engine, Date.now());
  const { priors } = model.manifest.features;
  return {
    encodeAds: adTowerEncoder(model),
    globalRates: { ctr: priors.global_ctr, cvr: priors.global_cvr },
    light: settings.light,
    money,
    pacer: money.pacer,
    frequency: new FrequencyCaps(catalog, money.store),
    campaignCode: campaignCodes(catalog, model.manifest.campaigns),
    engine,
    catalog,
    history,
    calibration: model.manifest.calibration,
    modelVersion: model.manifest.version,
    modelSha256: model.manifest.files['model.pt']!.sha256,
    modelDir: model.dir,
    rules: placementRules(config),
  };
}

/** Closes the model's engine (it drains its queue first) and stops money pushing eligibility to it. */
export function closeServing(serving: Serving): void {
  serving.money.detach(serving.catalog);
  serving.engine.close();
}

/**
 * Puts a campaign, edited or new, into this model's service: catalog columns, lightweight-score priors and
 * frequency caps. Eligibility and pacing follow once every model has it (Money.campaignChanged).
 */
export function applyCampaign(serving: Serving, campaign: CatalogCampaign): void {
  const { catalog } = serving;
  if (!serving.campaignCode.has(campaign.id)) serving.campaignCode.set(campaign.id, serving.campaignCode.size);
  setCampaign(catalog, campaign);
  const ads = catalog.campaignAds.get(campaign.id)!;
  serving.engine.setPriors(
    ads,
    Float32Array.from(ads, (ad) => adPrior(ad, serving.history, catalog, serving.light)),
  );
  serving.frequency.refresh();
}
