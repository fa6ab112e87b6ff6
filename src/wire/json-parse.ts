// A strict JSON parser (RFC 8259) that keeps every number's lexeme and reports member names that repeat with a
// different value (I-JSON, RFC 7493 §2.3), with the grammar and results of lossless-json's `parse` given a number
// parser and a duplicate-key callback; a string without an escape is taken as one slice rather than built a character
// at a time (most of an envelope is base64url leaves). test/wire/json-parse.test.ts holds the two to the same results.

/** What `parseStrictJson` calls: a number's lexeme to its value; a repeated member name with a different value. */
export interface StrictJsonHooks {
  readonly parseNumber: (lexeme: string) => unknown;
  /** The value kept for a member whose name repeats with a different value (the first was `previous`). */
  readonly onDuplicate: (key: string, previous: unknown, next: unknown) => unknown;
}

let text = '';
let i = 0;
let hooks: StrictJsonHooks;

/** Parses `input` whole; throws a SyntaxError (without quoting the input) where it is not JSON. */
export function parseStrictJson(input: string, h: StrictJsonHooks): unknown {
  text = input;
  i = 0;
  hooks = h;
  try {
    const value = parseValue();
    if (i < text.length) fail();
    return value;
  } finally {
    text = '';
  }
}

function fail(): never {
  throw new SyntaxError(`not JSON at position ${i}`);
}

function skipWhitespace(): void {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) i++;
    else return;
  }
}

function parseValue(): unknown {
  skipWhitespace();
  let value: unknown;
  const c = text.charCodeAt(i);
  if (c === 0x22) value = parseString();
  else if (c === 0x7b) value = parseObject();
  else if (c === 0x5b) value = parseArray();
  else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) value = parseNumber();
  else if (text.startsWith('true', i)) {
    i += 4;
    value = true;
  } else if (text.startsWith('false', i)) {
    i += 5;
    value = false;
  } else if (text.startsWith('null', i)) {
    i += 4;
    value = null;
  } else fail();
  skipWhitespace();
  return value;
}

function parseObject(): Record<string, unknown> {
  i++; // {
  skipWhitespace();
  const object: Record<string, unknown> = {};
  let first = true;
  while (i < text.length && text.charCodeAt(i) !== 0x7d) {
    if (!first) {
      if (text.charCodeAt(i) !== 0x2c) fail();
      i++;
      skipWhitespace();
    }
    first = false;
    if (text.charCodeAt(i) !== 0x22) fail();
    const key = parseString();
    skipWhitespace();
    if (text.charCodeAt(i) !== 0x3a) fail();
    i++;
    let value = parseValue();
    if (Object.prototype.hasOwnProperty.call(object, key) && !deepEqual(object[key], value))
      value = hooks.onDuplicate(key, object[key], value);
    if (key === '__proto__')
      // An own member, as JSON.parse makes it, not the prototype setter.
      Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
    else object[key] = value;
  }
  if (text.charCodeAt(i) !== 0x7d) fail();
  i++;
  return object;
}

function parseArray(): unknown[] {
  i++; // [
  skipWhitespace();
  const array: unknown[] = [];
  let first = true;
  while (i < text.length && text.charCodeAt(i) !== 0x5d) {
    if (!first) {
      if (text.charCodeAt(i) !== 0x2c) fail();
      i++;
    }
    first = false;
    array.push(parseValue());
  }
  if (text.charCodeAt(i) !== 0x5d) fail();
  i++;
  return array;
}

const ESCAPES: Readonly<Record<number, string>> = {
  0x22: '"',
  0x5c: '\\',
  0x2f: '/',
  0x62: '\b',
  0x66: '\f',
  0x6e: '\n',
  0x72: '\r',
  0x74: '\t',
};

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * The first character that ends a string's fast path: its closing quote, or an escape or a control character
 * (RFC 8259 §7). Global, so that `test` searches `text` from `lastIndex` in place: one scan per string, no slice to
 * search and no match array.
 */
const STOP = /["\\\u0000-\u001f]/g;

function parseString(): string {
  const start = ++i; // after the opening quote
  // Fast path: no escape or control character up to the next quote, one slice.
  STOP.lastIndex = start;
  if (!STOP.test(text)) fail();
  const end = STOP.lastIndex - 1;
  if (text.charCodeAt(end) === 0x22) {
    i = end + 1;
    return text.slice(start, end);
  }
  let out = '';
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i++;
      return out;
    }
    if (c === 0x5c) {
      const e = text.charCodeAt(i + 1);
      const simple = ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (
        e === 0x75 &&
        isHex(text.charCodeAt(i + 2)) &&
        isHex(text.charCodeAt(i + 3)) &&
        isHex(text.charCodeAt(i + 4)) &&
        isHex(text.charCodeAt(i + 5))
      ) {
        out += String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
      } else fail();
      continue;
    }
    if (!(c >= 0x20)) fail();
    const run = i;
    while (i < text.length) {
      const d = text.charCodeAt(i);
      if (d === 0x22 || d === 0x5c || d < 0x20) break;
      i++;
    }
    out += text.slice(run, i);
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function digits(): void {
  if (!isDigit(text.charCodeAt(i))) fail();
  while (isDigit(text.charCodeAt(i))) i++;
}

function parseNumber(): unknown {
  const start = i;
  if (text.charCodeAt(i) === 0x2d) i++;
  if (text.charCodeAt(i) === 0x30) i++;
  else digits();
  if (text.charCodeAt(i) === 0x2e) {
    i++;
    digits();
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b || sign === 0x2d) i++;
    digits();
  }
  return hooks.parseNumber(text.slice(start, i));
}

/**
 * lossless-json's equality, so that the same duplicates are refused: arrays item by item, any other two objects
 * (a lexeme-keeping number is one, with its `value`) member by member over both member sets.
 */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, k) => deepEqual(x, b[k]));
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const x = a as Record<string, unknown>;
    const y = b as Record<string, unknown>;
    const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
    for (const k of keys) if (!deepEqual(x[k], y[k])) return false;
    return true;
  }
  return false;
}
