// Strict, number-exact JSON (docs/wire-format.md, "Numbers and duplicate members"). One parser for envelopes,
// sealed leaves and resources given as text (json-parse.ts, lossless-json's grammar), which keeps each number's lexeme (FHIR R4 requires a
// decimal's precision to be kept, http://hl7.org/fhir/R4/datatypes.html#decimal) and refuses a member name that
// repeats with a different value (I-JSON, RFC 7493 §2.3; a repeat with an equal value reads the same for everyone).
import { LosslessNumber, isLosslessNumber, stringify } from 'lossless-json';
import { BrokerError } from './errors.js';
import { parseStrictJson } from './json-parse.js';

/** RFC 8259 §6 number grammar: exactly the FHIR decimal regex. */
export const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

type RawJson = (lexeme: string) => unknown;
const rawJSON = (JSON as unknown as { rawJSON?: RawJson }).rawJSON;

/**
 * A JSON number as its lexeme (`6.30`, `12345678901234567890`, `-0`). lossless-json's `stringify` writes the lexeme;
 * `JSON.stringify` writes it too where the runtime has `JSON.rawJSON`, and the nearest double otherwise.
 */
export class JsonNumber extends LosslessNumber {
  toJSON(): unknown {
    return rawJSON !== undefined ? rawJSON(this.value) : Number(this.value);
  }
}

/** A number leaf: a JS number, or a lexeme-carrying JsonNumber / LosslessNumber. */
export function isJsonNumber(value: unknown): value is LosslessNumber {
  return isLosslessNumber(value);
}

/** The JSON text of a number leaf; undefined for a non-finite JS number or a lexeme that is not RFC 8259 JSON. */
export function numberLexeme(value: number | LosslessNumber): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : undefined;
  return JSON_NUMBER.test(value.value) ? value.value : undefined;
}

const parseNumber = (lexeme: string): JsonNumber => new JsonNumber(lexeme);

/** Marks where a duplicate member was met, so the error can name its path (lossless-json reports a position). */
const DUPLICATE: unique symbol = Symbol('duplicate JSON member');

function findDuplicate(node: unknown, segs: (string | number)[]): boolean {
  if (typeof node === 'symbol') return node === DUPLICATE;
  if (typeof node !== 'object' || node === null || isLosslessNumber(node)) return false;
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      segs.push(i);
      if (findDuplicate(node[i], segs)) return true;
      segs.pop();
    }
    return false;
  }
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    segs.push(k);
    if (findDuplicate(v, segs)) return true;
    segs.pop();
  }
  return false;
}

/** What `parseJson` refuses: text that is not JSON, or a member name repeated with a different value (at `segments`). */
export type JsonFault =
  | { readonly kind: 'syntax' }
  | {
      readonly kind: 'duplicate';
      readonly segments: (string | number)[];
      /** The top-level `resourceType` when it is a string (names the root of a resource's path). */
      readonly resourceType: string | undefined;
    };

/**
 * Parses JSON text keeping number lexemes (JsonNumber) and refusing duplicate members. Returns the value, or the
 * fault: the caller turns it into its own coded error (it knows the root's name). lossless-json's messages quote
 * the input, so none is kept.
 */
export function parseJsonText(text: string): { readonly value: unknown } | { readonly fault: JsonFault } {
  let duplicates = false;
  let value: unknown;
  try {
    value = parseStrictJson(text, {
      parseNumber,
      onDuplicate: () => {
        duplicates = true;
        return DUPLICATE;
      },
    });
  } catch {
    return { fault: { kind: 'syntax' } };
  }
  if (!duplicates) return { value };
  const segments: (string | number)[] = [];
  findDuplicate(value, segments);
  const rt =
    typeof value === 'object' && value !== null ? (value as { resourceType?: unknown }).resourceType : undefined;
  return { fault: { kind: 'duplicate', segments, resourceType: typeof rt === 'string' ? rt : undefined } };
}

/**
 * Parses a resource given as JSON text: not JSON → E_JSON_MALFORMED; a duplicate member → E_JSON_MALFORMED naming
 * its path (`format` renders segments, e.g. src/fhir/json-path.ts formatPath).
 */
export function parseResourceJson(text: string, format: (segments: readonly (string | number)[]) => string): unknown {
  const r = parseJsonText(text);
  if ('value' in r) return r.value;
  if (r.fault.kind === 'syntax') throw new BrokerError('E_JSON_MALFORMED', 'input is not well-formed JSON');
  const path = format([r.fault.resourceType ?? 'Resource', ...r.fault.segments]);
  throw new BrokerError('E_JSON_MALFORMED', `${path}: duplicate member name (RFC 7493 §2.3)`, { path });
}

/** JSON text of a value holding JsonNumbers, each written as its lexeme; `indent` as JSON.stringify's space. */
export function stringifyJson(value: unknown, indent?: number): string {
  return stringify(value, undefined, indent) ?? 'null';
}
