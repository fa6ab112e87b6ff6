// The strict JSON parser (src/wire/json-parse.ts) against lossless-json's `parse` with the same number parser and
// duplicate callback: the same verdict (value or refusal), the same value (number lexemes, member order, `__proto__`
// as an own member) and the same duplicates reported, on hand-picked edge cases, the envelope test vectors, the FHIR
// examples and thousands of deterministic mutations of them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as losslessParse } from 'lossless-json';
import { describe, expect, it } from 'vitest';
import { parseStrictJson } from '../../src/wire/json-parse.js';
import { JsonNumber, isJsonNumber } from '../../src/wire/json.js';
import { EXAMPLES_DIR, HAVE_EXAMPLES, listExamples } from '../fhir/examples.js';

const DUP = Symbol('dup');

type Outcome = { readonly ok: true; readonly value: unknown; readonly dups: string[] } | { readonly ok: false };

/** A comparable rendering: numbers as ['n', lexeme], objects as their entries in order, the duplicate marker as ['dup']. */
function canon(v: unknown): unknown {
  if (v === DUP) return ['dup'];
  if (isJsonNumber(v)) return ['n', v.value, v instanceof JsonNumber];
  if (Array.isArray(v)) return ['a', ...v.map(canon)];
  if (typeof v === 'object' && v !== null)
    return ['o', Object.getPrototypeOf(v) === Object.prototype, ...Object.entries(v).map(([k, x]) => [k, canon(x)])];
  return v;
}

function ours(text: string): Outcome {
  const dups: string[] = [];
  try {
    const value = parseStrictJson(text, {
      parseNumber: (l) => new JsonNumber(l),
      onDuplicate: (key) => {
        dups.push(key);
        return DUP;
      },
    });
    return { ok: true, value: canon(value), dups };
  } catch (e) {
    expect(e).toBeInstanceOf(SyntaxError);
    return { ok: false };
  }
}

function reference(text: string): Outcome {
  const dups: string[] = [];
  try {
    const value = losslessParse(text, null, {
      parseNumber: (l: string) => new JsonNumber(l),
      onDuplicateKey: ({ key }) => {
        dups.push(key);
        return DUP;
      },
    });
    return { ok: true, value: canon(value), dups };
  } catch {
    return { ok: false };
  }
}

const EDGES = [
  '',
  ' ',
  '0',
  '-0',
  '-',
  '01',
  '1.',
  '.5',
  '1e',
  '1e+',
  '1E-7',
  '-1.50e+10',
  '12345678901234567890',
  '2.',
  '"a"',
  '"a',
  '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
  '"\\u00e9\\u0041\\uD83D\\uDE00"',
  '"\\u00g1"',
  '"\\x"',
  '"tab\there"',
  '"line\nbreak"',
  '"é 漢字 😀"',
  'true',
  'tru',
  'false',
  'null',
  'nul',
  'True',
  '[]',
  '[ ]',
  '[1,]',
  '[,1]',
  '[1 2]',
  '[1,[2,[3,{"a":[]}]]]',
  '{}',
  '{ }',
  '{"a":1,}',
  '{,"a":1}',
  '{"a" 1}',
  '{"a":}',
  '{a:1}',
  "{'a':1}",
  '{"a":1}x',
  '{"a":1} ',
  ' \t\r\n{"a" : [ 1 , 2 ] }\n',
  '\ufeff{}',
  '{"a":1,"a":1}',
  '{"a":1,"a":2}',
  '{"a":1.0,"a":1}',
  '{"a":{"b":[1,"x"]},"a":{"b":[1,"x"]}}',
  '{"a":{"b":[1,"x"]},"a":{"b":[1,"y"]}}',
  '{"a":[],"a":{}}',
  '{"a":null,"a":false}',
  '{"__proto__":{"x":1},"b":2}',
  '{"__proto__":1,"__proto__":2}',
  '{"2":"b","1":"a","z":0}',
  '{"a":"\\u0000"}',
  '[1]]',
  '[[[[[[[[[[]]]]]]]]]]',
  '{"a":-}',
  '{"a":--1}',
  '{"a":+1}',
  '{"a":0x10}',
  '{"a":1e5,"b":-0.0E-0}',
];

function compare(text: string): void {
  const a = ours(text);
  const b = reference(text);
  expect(a, JSON.stringify(text).slice(0, 200)).toStrictEqual(b);
}

/** A deterministic PRNG (mulberry32), so a failing mutation can be found again. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SIGNIFICANT = ['"', '\\', '{', '}', '[', ']', ',', ':', '-', '.', 'e', '0', '1', ' ', '\n', '\u0001', 'u', 't'];

function mutations(text: string, count: number, seed: number): string[] {
  const rnd = prng(seed);
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    const at = Math.floor(rnd() * (text.length + 1));
    const ch = SIGNIFICANT[Math.floor(rnd() * SIGNIFICANT.length)] as string;
    const op = rnd();
    if (op < 0.34) out.push(text.slice(0, at) + text.slice(at + 1));
    else if (op < 0.67) out.push(text.slice(0, at) + ch + text.slice(at));
    else out.push(text.slice(0, at) + ch + text.slice(at + 1));
  }
  return out;
}

const VECTORS = readFileSync(join(import.meta.dirname, '..', 'vectors', 'envelope-v1.json'), 'utf8');

/** Every JSON text inside the vectors: the file itself and each string member that parses as an object (envelopes). */
function vectorTexts(): string[] {
  const texts = [VECTORS];
  const walk = (v: unknown): void => {
    if (typeof v === 'string' && v.startsWith('{')) texts.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(walk);
  };
  walk(JSON.parse(VECTORS));
  return texts;
}

describe('parseStrictJson = lossless-json parse', () => {
  it.each(EDGES.map((t) => [JSON.stringify(t), t]))('%s', (_, text) => compare(text as string));

  it('accepts and refuses what lossless-json does on the envelope vectors and 1,200 mutations of them', () => {
    const texts = vectorTexts();
    expect(texts.length).toBeGreaterThan(2);
    let refused = 0;
    for (const [n, t] of texts.entries()) {
      compare(t);
      for (const m of mutations(t, Math.ceil(1200 / texts.length), n + 1)) {
        compare(m);
        if (!ours(m).ok) refused++;
      }
    }
    // The mutations exercise both verdicts.
    expect(refused).toBeGreaterThan(100);
  });

  it('keeps a number written with a leading zero out (RFC 8259 §6), as lossless-json does', () => {
    expect(ours('{"a":007}')).toStrictEqual({ ok: false });
    expect(reference('{"a":007}')).toStrictEqual({ ok: false });
  });
});

describe.skipIf(!HAVE_EXAMPLES)(`parseStrictJson on ${EXAMPLES_DIR}`, () => {
  it('parses every HL7 and Synthea example as lossless-json does, and 40 mutations of each HL7 example', () => {
    const hl7 = listExamples('hl7').map((f) => join('hl7', f));
    const files = [...hl7, ...listExamples('synthea').map((f) => join('synthea', f))];
    expect(files.length).toBeGreaterThan(10);
    for (const [n, f] of files.entries()) {
      const text = readFileSync(join(EXAMPLES_DIR, f), 'utf8');
      compare(text);
      // The Synthea bundles (up to 2.6 MB) are parsed whole once; mutations of the small HL7 ones cover the grammar.
      if (n < hl7.length) for (const m of mutations(text, 40, 1000 + n)) compare(m);
    }
  });
});
