// Preloaded into a test daemon (NODE_OPTIONS=--require) to move its wall clock by
// TEST_CLOCK_SHIFT_MS, so a test can put events on both sides of a campaign's local midnight. The
// daemon has no clock setting of its own: token times, event times and local days all read
// Date.now(), which this shifts as a whole; monotonic time is left alone.
const shiftMs = Number(process.env.TEST_CLOCK_SHIFT_MS ?? 0);
const realNow = Date.now;
Date.now = () => realNow() + shiftMs;
