// Whether this runtime knows an IANA time zone: campaign time zones are checked with it wherever a
// campaign is written (catalog.jsonl, the catalog store), so a day boundary is never computed in a zone
// the clock code cannot resolve.
export function isKnownTimeZone(timeZone: string): boolean {
  try {
    // The constructor throws a RangeError for a zone this runtime does not know.
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}
