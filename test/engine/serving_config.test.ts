import { expect, it } from 'vitest';

import { loadConfig } from '../../src/config';
import { engineSettings, placementRules } from '../../src/engine/serving';

it("takes the engine's lightweight-score weights and every placement's position effects from config", () => {
  const config = loadConfig({
    ADSERVE_LIGHT_SIMILARITY_WEIGHT: '0.5',
    ADSERVE_LIGHT_VALUE_WEIGHT: '0.25',
    ADSERVE_LIGHT_CTR_WEIGHT: '0.125',
    ADSERVE_LIGHT_QUALITY_WEIGHT: '2',
    ADSERVE_LIGHT_MAX_ECPM_MICROS: '7000000',
    ADSERVE_POSITION_EFFECTS: '1,0.5,0.2',
    ADSERVE_MAX_SLOTS: '3',
    ADSERVE_PLACEMENTS: JSON.stringify({ search: { auction: 'vcg' } }),
  });
  expect(engineSettings(config).light).toEqual({ similarity: 0.5, value: 0.25, ctr: 0.125, quality: 2, maxEcpmMicros: 7_000_000 });
  const rules = placementRules(config);
  expect(rules.filter(Boolean)).toHaveLength(6);
  for (const placement of rules) expect(placement.positionEffects).toEqual([1, 0.5, 0.2]);
});
