// Everything a loaded model serves with: the native engine, the catalog columns, the calibration
// maps and the ads' historical rates (the fallback when a request is answered degraded).
import path from 'node:path';

import type { AuctionRules } from '../auction/auction';
import { Budgets } from '../money/budgets';
import { FrequencyCaps } from '../money/frequency_caps';
import { Pacer } from '../money/pacing';
import type { SpendStore } from '../money/spend_store';
import { type Catalog, catalogFromJson } from '../catalog/catalog';
import { validateCalibration } from '../calibration/calibrate';
import type { Config } from '../config';
import type { NativeEngine } from './addon';
import { type AdHistory, adHistory, type EngineSettings, openEngine } from './engine';
import type { CalibrationParams, ModelDir } from './model_dir';
import { projectRoot } from '../paths';

export interface Serving {
  engine: NativeEngine;
  catalog: Catalog;
  history: AdHistory;
  calibration: { ctr: CalibrationParams; cvr: CalibrationParams };
  modelVersion: string;
  modelDir: string;
  budgets: Budgets;
  pacer: Pacer;
  frequency: FrequencyCaps;
  /** Auction rules before the request's own slots, floor and auction type apply. */
  rules: AuctionRules;
}

export function engineSettings(config: Config): EngineSettings {
  return {
    index: { kind: config.indexKind, ...(config.nprobe > 0 ? { nprobe: config.nprobe } : {}), ...(config.nlist > 0 ? { nlist: config.nlist } : {}) },
    ...(config.indexCacheDir !== '' ? { indexCacheDir: path.resolve(projectRoot, config.indexCacheDir) } : {}),
    fusion: config.fusion,
    annCandidates: config.annCandidates,
    scoreCandidates: config.scoreCandidates,
    batching: { maxBatch: config.maxBatch, maxDelayUs: config.maxDelayUs, queueCapacity: config.queueCapacity },
    light: { similarity: 0.3, value: 0.3, ctr: 0.3, quality: 0.1, maxEcpmMicros: 50_000_000 },
  };
}

export async function openServing(model: ModelDir, config: Config, spend: SpendStore): Promise<Serving> {
  validateCalibration(model.manifest.calibration.ctr);
  validateCalibration(model.manifest.calibration.cvr);
  const catalog = catalogFromJson(model.catalog);
  const history = adHistory(model);
  const engine = await openEngine(model, catalog, history, engineSettings(config));
  return {
    budgets: new Budgets(catalog, engine, spend.state, Date.now()),
    pacer: new Pacer(catalog, spend.state),
    frequency: new FrequencyCaps(catalog, spend),
    engine,
    catalog,
    history,
    calibration: model.manifest.calibration,
    modelVersion: model.manifest.version,
    modelDir: model.dir,
    rules: {
      mechanism: config.auction,
      slots: 1,
      floorCpmMicros: 0,
      reserveMicros: [config.reserveCpcMicros, config.reserveCpmMicros, config.reserveCpaMicros],
      incrementMicros: config.priceIncrementMicros,
      positionEffects: [1, 0.75, 0.6, 0.5, 0.42, 0.36, 0.32, 0.29, 0.27, 0.25],
    },
  };
}
