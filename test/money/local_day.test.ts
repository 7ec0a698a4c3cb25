import { describe, expect, it } from 'vitest';

import { localDay } from '../../src/money/local_day';

const day = (iso: string): number => Date.parse(`${iso}T00:00:00Z`) / 86_400_000;

describe('campaign days in their time zone', () => {
  it('numbers local days like UTC days and measures time into the local day', () => {
    const at = Date.parse('2026-11-24T03:30:00Z');
    expect(localDay(at)).toEqual({ day: day('2026-11-24'), msIntoDay: 3.5 * 3_600_000 });
    // 22:30 the evening before in New York (UTC-5 in November).
    expect(localDay(at, 'America/New_York')).toEqual({ day: day('2026-11-23'), msIntoDay: 22.5 * 3_600_000 });
    // 17:30 the same day in Kiritimati (UTC+14).
    expect(localDay(at, 'Pacific/Kiritimati')).toEqual({ day: day('2026-11-24'), msIntoDay: 17.5 * 3_600_000 });
    expect(localDay(Date.parse('2026-11-24T10:30:00Z'), 'Pacific/Kiritimati').day).toBe(day('2026-11-25'));
  });

  it('follows daylight saving time', () => {
    // New York is UTC-4 in July.
    expect(localDay(Date.parse('2026-07-01T03:30:00Z'), 'America/New_York')).toEqual({ day: day('2026-06-30'), msIntoDay: 23.5 * 3_600_000 });
  });
});
