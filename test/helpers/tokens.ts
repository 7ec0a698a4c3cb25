// Forged spellings of an event token, for the tests that show none of them is accepted.
const base64url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The base64url character one bit away: at a token's last character that often changes only unused padding bits. */
const lowBitFlip = (c: string): string => base64url[base64url.indexOf(c) ^ 1] ?? 'A';

/**
 * Every token that differs from `token` by one substituted character (each of `substitutes`, and
 * the character one bit away), one deleted or one inserted character, or by an affix.
 */
export function mutations(token: string, substitutes = `${base64url}.=+/ \u00e9`): string[] {
  const out = new Set<string>();
  for (let i = 0; i < token.length; i++) {
    for (const c of `${substitutes}${lowBitFlip(token[i]!)}`) if (c !== token[i]) out.add(token.slice(0, i) + c + token.slice(i + 1));
    out.add(token.slice(0, i) + token.slice(i + 1));
    for (const c of 'A.=') out.add(token.slice(0, i) + c + token.slice(i));
  }
  for (const affix of ['=', '==', 'A', '.', ' ', '\n', '\u0000']) out.add(token + affix);
  out.add(`\ufeff${token}`);
  out.delete(token);
  return [...out];
}
