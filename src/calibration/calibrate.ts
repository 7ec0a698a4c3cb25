// Applies a model's calibration map to raw logits, exactly as train/calibration.py's apply():
// isotonic = linear interpolation between knots, clamped at the ends; temperature = sigmoid(z / T);
// Platt = sigmoid(a z + b).

/** A model's calibration map from raw logit to probability, as train/ writes it in manifest.json. */
export type CalibrationParams = { kind: 'isotonic'; x: number[]; y: number[] } | { kind: 'temperature'; t: number } | { kind: 'platt'; a: number; b: number };

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

function interpolate(xs: readonly number[], ys: readonly number[], x: number): number {
  const last = xs.length - 1;
  if (x <= xs[0]!) return ys[0]!;
  if (x >= xs[last]!) return ys[last]!;
  let low = 0;
  let high = last;
  while (high - low > 1) {
    const middle = (low + high) >>> 1;
    if (xs[middle]! <= x) low = middle;
    else high = middle;
  }
  const x0 = xs[low]!;
  const x1 = xs[high]!;
  return ys[low]! + ((ys[high]! - ys[low]!) * (x - x0)) / (x1 - x0);
}

export function validateCalibration(params: CalibrationParams): void {
  if (params.kind === 'isotonic') {
    if (params.x.length === 0 || params.x.length !== params.y.length) throw new Error('isotonic calibration needs equally long, non-empty x and y');
    for (let i = 1; i < params.x.length; i++) {
      if (!(params.x[i]! > params.x[i - 1]!) || params.y[i]! < params.y[i - 1]!) throw new Error('isotonic calibration knots must increase');
    }
  } else if (params.kind === 'temperature') {
    if (!(params.t > 0)) throw new Error('temperature must be positive');
  } else if (params.kind !== 'platt') {
    throw new Error(`unknown calibration kind ${(params as { kind: string }).kind}`);
  }
}

export function calibrate(params: CalibrationParams, logit: number): number {
  switch (params.kind) {
    case 'isotonic':
      return interpolate(params.x, params.y, logit);
    case 'temperature':
      return sigmoid(logit / params.t);
    case 'platt':
      return sigmoid(params.a * logit + params.b);
  }
}

/**
 * An isotonic map prepared for columns of lookups: for each of several equal slices of
 * [x_0, x_last], the last knot lying in an earlier slice, so a lookup scans forward over a knot
 * or two instead of searching them all. Slice numbers grow with x, so that knot is never above the
 * logit, and the scan stops at the interval interpolate() finds: the same value.
 */
export class IsotonicIndex {
  private readonly x: Float64Array;
  private readonly y: Float64Array;
  private readonly start: Int32Array;
  private readonly slicesPerUnit: number;

  constructor(params: { x: readonly number[]; y: readonly number[] }) {
    this.x = Float64Array.from(params.x);
    this.y = Float64Array.from(params.y);
    const last = this.x.length - 1;
    const slices = Math.max(1, 4 * last);
    this.slicesPerUnit = last > 0 ? slices / (this.x[last]! - this.x[0]!) : 0;
    this.start = new Int32Array(slices);
    let knot = 0;
    for (let slice = 0; slice < slices; slice++) {
      while (knot + 1 < last && this.slice(this.x[knot + 1]!) < slice) knot++;
      this.start[slice] = knot;
    }
  }

  private slice(x: number): number {
    // NaN falls in slice 0 and comes out NaN, as from interpolate().
    return ((x - this.x[0]!) * this.slicesPerUnit) | 0;
  }

  lookup(x: number): number {
    const xs = this.x;
    const ys = this.y;
    const last = xs.length - 1;
    if (x <= xs[0]!) return ys[0]!;
    if (x >= xs[last]!) return ys[last]!;
    let low = this.start[Math.min(this.slice(x), this.start.length - 1)]!;
    while (xs[low + 1]! <= x) low++;
    const x0 = xs[low]!;
    return ys[low]! + ((ys[low + 1]! - ys[low]!) * (x - x0)) / (xs[low + 1]! - x0);
  }
}

/**
 * Calibrates `count` logits into `out`, the map's kind chosen once for the column; each value is
 * what calibrate() gives for it. `isotonic` is the map's prepared index when it is isotonic.
 */
export function calibrateColumn(params: CalibrationParams, isotonic: IsotonicIndex | undefined, logits: Float32Array, count: number, out: Float64Array): void {
  switch (params.kind) {
    case 'isotonic': {
      const index = isotonic ?? new IsotonicIndex(params);
      for (let i = 0; i < count; i++) out[i] = index.lookup(logits[i]!);
      return;
    }
    case 'temperature': {
      const { t } = params;
      for (let i = 0; i < count; i++) out[i] = sigmoid(logits[i]! / t);
      return;
    }
    case 'platt': {
      const { a, b } = params;
      for (let i = 0; i < count; i++) out[i] = sigmoid(a * logits[i]! + b);
      return;
    }
  }
}
