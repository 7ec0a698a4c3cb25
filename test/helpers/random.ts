/** A repeatable uniform [0, 1) source (a 32-bit linear congruential generator), so random tests fail the same way twice. */
export function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
