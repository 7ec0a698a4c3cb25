import { execFileSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { type CalibrationParams, calibrate, calibrateColumn, IsotonicIndex, validateCalibration } from '../../src/calibration/calibrate';
import { readModelDir } from '../../src/engine/model_dir';
import { projectRoot } from '../../src/paths';
import { tinyModelDir } from '../setup/tiny_model';

const logits = Array.from({ length: 10_000 }, (_, i) => -12 + (i * 16) / 9_999 + (i % 7) * 1e-4);

function pythonApply(params: CalibrationParams): number[] {
  const script =
    'import json, sys\nimport numpy as np\nfrom train import calibration\nd = json.load(sys.stdin)\nprint(json.dumps(calibration.apply(d["p"], np.array(d["x"])).tolist()))';
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

  // Knots bunched at both ends and one far out, so some slices of the prepared index hold many knots and most none.
  const bunched: CalibrationParams = {
    kind: 'isotonic',
    x: [-12, -11.999, -11.99, -11.9, -3, -2.9999, 0, 1e-9, 2e-9, 3.5, 3.5000001, 40],
    y: [0, 0.001, 0.001, 0.002, 0.01, 0.02, 0.2, 0.21, 0.22, 0.5, 0.9, 1],
  };

  it.each([...maps, ['a bunched isotonic map', bunched] as [string, CalibrationParams]])(
    'calibrates a column of %s to exactly the single-value results',
    (_name, params) => {
      const column = Float32Array.from([
        ...logits,
        ...(params.kind === 'isotonic' ? params.x.flatMap((x) => [x, x - 1e-7, x + 1e-7]) : []),
        NaN,
        -Infinity,
        Infinity,
      ]);
      const out = new Float64Array(column.length);
      calibrateColumn(params, params.kind === 'isotonic' ? new IsotonicIndex(params) : undefined, column, column.length, out);
      for (let i = 0; i < column.length; i++) expect(out[i]).toBe(calibrate(params, column[i]!));
    },
  );

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
