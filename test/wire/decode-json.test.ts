// The one decode-then-validate step (src/wire/decode-json.ts): bytes → UTF-8 (fatal) → JSON → zod schema, each
// failure a BrokerError with a stable code and the element path, never the value that was sent.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { decodeJson, decodeJsonBytes, tryDecodeJson } from '../../src/wire/decode-json.js';
import { BrokerError } from '../../src/wire/errors.js';

const SECRET = 'Quillfeather-555-0142';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const schema = z.strictObject({
  v: z.literal(1),
  name: z.string(),
  visits: z.array(z.object({ at: z.number() })),
  tags: z.record(z.string(), z.number()).optional(),
});
const opts = { what: 'test record', code: 'E_STORED_INVALID' } as const;

function thrown(f: () => unknown): BrokerError {
  try {
    f();
  } catch (e) {
    if (e instanceof BrokerError) return e;
    throw e;
  }
  throw new Error('expected a BrokerError');
}

describe('decodeJson', () => {
  it('returns the value the schema parsed', () => {
    const value = { v: 1, name: SECRET, visits: [{ at: 3 }] };
    expect(decodeJson(enc(JSON.stringify(value)), schema, opts)).toEqual(value);
  });

  it.each([
    ['a bad UTF-8 sequence (fatal decoding, not a replacement character)', new Uint8Array([0x7b, 0xff, 0x7d])],
    ['a byte order mark (RFC 8259 §8.1)', new Uint8Array([0xef, 0xbb, 0xbf, ...enc('{"v":1}')])],
    ['truncated JSON quoting the value', enc(`{"v":1,"name":"${SECRET}`)],
    ['no bytes', new Uint8Array()],
  ])('refuses %s with E_JSON_MALFORMED, quoting nothing', (_name, bytes) => {
    const e = thrown(() => decodeJson(bytes, schema, opts));
    expect(e.toJSON()).toEqual({ code: 'E_JSON_MALFORMED', message: 'test record is not well-formed UTF-8 JSON' });
    expect(e.cause).toBeUndefined();
  });

  it.each([
    ['a wrong type deep inside', { v: 1, name: 'x', visits: [{ at: 1 }, { at: SECRET }] }, 'visits[1].at'],
    ['a wrong literal', { v: 2, name: SECRET, visits: [] }, 'v'],
    ['a missing element', { v: 1, visits: [] }, 'name'],
    ['a wrong type in a record', { v: 1, name: 'x', visits: [], tags: { ehr: SECRET } }, 'tags.ehr'],
  ])('refuses %s with the caller’s code and the element path, never the value', (_name, value, path) => {
    const e = thrown(() => decodeJson(enc(JSON.stringify(value)), schema, opts));
    expect(e.code).toBe('E_STORED_INVALID');
    expect(e.path).toBe(path);
    expect(e.message.startsWith(`test record ${path}: `)).toBe(true);
    expect(JSON.stringify(e.toJSON())).not.toContain(SECRET);
  });

  it('names the record itself when the root is wrong, and no path', () => {
    const e = thrown(() => decodeJson(enc(`["${SECRET}"]`), schema, opts));
    expect(e.code).toBe('E_STORED_INVALID');
    expect(e.path).toBeUndefined();
    expect(e.message).toMatch(/^test record: /);
    expect(e.message).not.toContain(SECRET);
  });

  it('uses the given codes, path and fixed message where the kind of failure must not show', () => {
    const fixed = {
      what: 'sealed',
      code: 'E_DECRYPT',
      malformedCode: 'E_DECRYPT',
      path: 'consent',
      message: 'no',
    } as const;
    expect(thrown(() => decodeJson(enc('{'), schema, fixed)).toJSON()).toEqual({
      code: 'E_DECRYPT',
      message: 'no',
      path: 'consent',
    });
    expect(thrown(() => decodeJson(enc('{"v":3}'), schema, fixed)).toJSON()).toMatchObject({
      code: 'E_DECRYPT',
      message: 'no',
    });
  });
});

describe('tryDecodeJson and decodeJsonBytes', () => {
  it('tryDecodeJson returns the error instead of throwing it', () => {
    const bad = tryDecodeJson(enc('{"v":1}'), schema, opts);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.code).toBe('E_STORED_INVALID');
    const good = tryDecodeJson(enc('{"v":1,"name":"n","visits":[]}'), schema, opts);
    expect(good).toEqual({ ok: true, value: { v: 1, name: 'n', visits: [] } });
    const malformed = tryDecodeJson(enc('nope'), schema, opts);
    expect(malformed.ok ? undefined : malformed.error.code).toBe('E_JSON_MALFORMED');
  });

  it('decodeJsonBytes returns any JSON value unchecked', () => {
    expect(decodeJsonBytes(enc('[1,"a",null]'), { what: 'x' })).toEqual([1, 'a', null]);
    expect(thrown(() => decodeJsonBytes(enc('[1,'), { what: 'x', malformedCode: 'E_ENVELOPE_INVALID' })).code).toBe(
      'E_ENVELOPE_INVALID',
    );
  });
});
