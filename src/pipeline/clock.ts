// Time and chance as a decision sees them: passed in, so that a test can fix both.

export interface Clock {
  /** Wall-clock milliseconds since the epoch: token issue and expiry, frequency-cap windows. */
  now(): number;
  /** Monotonic milliseconds with sub-microsecond resolution: stage durations and the request's time budget. */
  monotonic(): number;
}

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

/** Uniform draws in [0, 1): pacing's participation draws. */
export type RandomSource = () => number;
