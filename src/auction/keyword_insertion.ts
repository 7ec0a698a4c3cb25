// Dynamic keyword insertion: a creative title like "{KeyWord:Running Shoes} on Sale" shows the
// searcher's query in place of the default text on search placements, cased as the placeholder asks
// ({keyword} lower, {Keyword} sentence, {KeyWord} title, {KEYWORD} upper case), and the default text
// elsewhere or when the query would make the title too long.
const placeholder = /\{(keyword|Keyword|KeyWord|KEYWORD):([^{}]*)\}/g;

/** Longest title an insertion may produce; past it the default text stays. */
export const maxInsertedTitleLength = 90;

function cased(query: string, style: string): string {
  switch (style) {
    case 'keyword':
      return query.toLowerCase();
    case 'KEYWORD':
      return query.toUpperCase();
    case 'Keyword':
      return query.charAt(0).toUpperCase() + query.slice(1).toLowerCase();
    default:
      return query.toLowerCase().replace(/(^|\s)(\S)/g, (_, space: string, letter: string) => space + letter.toUpperCase());
  }
}

/** The title as shown; `query` is the search query (absent or empty off search placements). */
export function insertKeyword(title: string, query: string | undefined): string {
  if (!title.includes('{')) return title;
  // Only printable text goes into a creative: control characters and runs of spaces collapse.
  const keyword = (query ?? '').replace(/[\p{C}\s]+/gu, ' ').trim();
  const withDefaults = title.replace(placeholder, (_, __, fallback: string) => fallback);
  if (keyword === '') return withDefaults;
  const inserted = title.replace(placeholder, (_, style: string) => cased(keyword, style));
  return inserted.length <= maxInsertedTitleLength ? inserted : withDefaults;
}
