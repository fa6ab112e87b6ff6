// Test helper: an opened resource (numbers as JsonNumber lexemes, src/wire/json.ts) read as JSON.parse would read
// its JSON text, so it compares with a JS object literal. Lexeme checks compare stringifyJson text instead.
import { stringifyJson } from '../../src/wire/json.js';

export function withJsNumbers(value: unknown): unknown {
  return JSON.parse(stringifyJson(value)) as unknown;
}
