// Campaign days in the campaign's own time zone: a daily budget resets at local midnight and pacing
// follows the local clock. Days are numbered like UTC days (days since 1970-01-01), so ledger
// entries and Redis keys stay plain integers.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

export interface LocalDay {
  day: number;
  msIntoDay: number;
}

export function localDay(timeMs: number, timeZone = 'UTC'): LocalDay {
  let localMs = timeMs;
  if (timeZone !== 'UTC') {
    const parts: Record<string, number> = {};
    for (const part of formatter(timeZone).formatToParts(timeMs)) if (part.type !== 'literal') parts[part.type] = Number(part.value);
    localMs = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!) + (timeMs % 1000);
  }
  const day = Math.floor(localMs / 86_400_000);
  return { day, msIntoDay: localMs - day * 86_400_000 };
}
