import { execFileSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { calibrate, validateCalibration } from '../../src/calibration/calibrate';
import type { CalibrationParams } from '../../src/engine/model_dir';
import { readModelDir } from '../../src/engine/model_dir';
import { projectRoot } from '../../src/paths';
import { tinyModelDir } from '../setup/tiny_model';

const logits = Array.from({ length: 10_000 }, (_, i) => -12 + (i * 16) / 9_999 + (i % 7) * 1e-4);

function pythonApply(params: CalibrationParams): number[] {
  const script = 'import json, sys\nimport numpy as np\nfrom train import calibration\nd = json.load(sys.stdin)\nprint(json.dumps(calibration.apply(d["p"], np.array(d["x"])).tolist()))';
  const output = execFileSync('/usr/bin/python3', ['-c', script], { cwd: projectRoot, input: JSON.stringify({ p: params, x: logits }), encoding: 'utf8' });
  return JSON.parse(output) as number[];
}

describe('calibration', () => {
  const manifest = readModelDir(tinyModelDir).manifest;
  const maps: Array<[string, CalibrationParams]> = [
    ['the model CTR map (isotonic)', manifest.calibration.ctr],
    ['the model CVR map (temperature)', manifest.calibration.cvr],
    ['a Platt map', { kind: 'platt', a: 0.8, b: -0.3 }],
  ];

  it.each(maps)('applies %s exactly as train/ does over 10K logits', (_name, params) => {
    const expected = pythonApply(params);
    const worst = Math.max(...logits.map((logit, i) => Math.abs(calibrate(params, logit) - expected[i]!)));
    expect(worst).toBeLessThan(1e-12);
  });

  it('is monotone and bounded for every map', () => {
    for (const [, params] of maps) {
      const values = logits.map((logit) => calibrate(params, logit));
      expect(values.every((p, i) => p >= 0 && p <= 1 && (i === 0 || p >= values[i - 1]!))).toBe(true);
    }
  });

  it('refuses broken parameters', () => {
    expect(() => validateCalibration({ kind: 'isotonic', x: [0, 0], y: [0.1, 0.2] })).toThrow(/increase/);
    expect(() => validateCalibration({ kind: 'isotonic', x: [0, 1], y: [0.3, 0.2] })).toThrow(/increase/);
    expect(() => validateCalibration({ kind: 'temperature', t: 0 })).toThrow(/positive/);
  });
});
