import { describe, expect, it } from 'vitest';

import { RequestError } from '../../src/errors';
import { createLogger } from '../../src/log';
import { refusalHeaders, toRefusal } from '../../src/server/refusal';

function capturingLog(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger('debug', (line) => lines.push(line)) };
}

describe('toRefusal: the one mapping from a failure to its answer', () => {
  it('answers a RequestError with its own status, code and message, and logs nothing', () => {
    const { lines, log } = capturingLog();
    for (const error of [
      new RequestError(400, 'bad_request', 'not an AdRequest'),
      new RequestError(409, 'duplicate_event', 'event e1 was already recorded'),
      new RequestError(503, 'overloaded', '64 ad decisions in flight'),
    ]) {
      expect(toRefusal(error, 'the ad request was not answered', log)).toBe(error);
    }
    expect(lines).toEqual([]);
  });

  it('answers any other failure 503 internal, saying what did not happen, and logs the detail with its stack only', () => {
    const { lines, log } = capturingLog();
    const disk = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const refusal = toRefusal(disk, 'the event was not recorded', log);
    expect(refusal).toBeInstanceOf(RequestError);
    expect({ status: refusal.status, code: refusal.code, message: refusal.message }).toEqual({
      status: 503,
      code: 'internal',
      message: 'internal error: the event was not recorded; retry',
    });
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'the event was not recorded',
        err: { type: 'Error', message: disk.message, stack: disk.stack, code: 'ENOSPC' },
      }),
    ]);
  });

  it('maps a native engine error and a thrown non-Error the same way', () => {
    const { log } = capturingLog();
    const native = Object.assign(new Error('libtorch: shape mismatch'), { code: 'E_MODEL' });
    for (const error of [native, 'a string', undefined]) {
      const refusal = toRefusal(error, 'the ad request was not answered', log);
      expect([refusal.status, refusal.code]).toEqual([503, 'internal']);
    }
  });
});

describe('refusalHeaders', () => {
  it('asks for a retry after 1 s on every 503 and adds nothing to other refusals', () => {
    expect(refusalHeaders(new RequestError(503, 'internal', 'x'))).toEqual({ 'Retry-After': '1' });
    expect(refusalHeaders(new RequestError(503, 'draining', 'x'))).toEqual({ 'Retry-After': '1' });
    for (const status of [400, 401, 403, 404, 405, 409, 413, 415, 422, 429] as const) {
      expect(refusalHeaders(new RequestError(status, 'any', 'x'))).toEqual({});
    }
  });
});
