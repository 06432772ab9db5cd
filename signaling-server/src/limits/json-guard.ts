// Rejects deeply nested JSON by scanning the raw frame text, so hostile nesting is refused before
// JSON.parse or any recursive walk (schema validation, re-serialisation) sees it. It counts
// brackets outside strings only; it does not validate JSON — JSON.parse still does that.

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }
const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]

/**
 * True when some object/array in `text` is nested more than `maxDepth` levels deep
 * (`1` and `"a"` have depth 0, `{}` and `[]` depth 1, `[[1]]` depth 2). Linear, allocation-free,
 * and stops at the first level past the limit.
 */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH)
        i++; // the escaped character, whatever it is, cannot end the string
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && depth > 0) {
      // Not below zero: stray closers must not buy credit for later openers.
      depth--;
    }
  }
  return false;
}
