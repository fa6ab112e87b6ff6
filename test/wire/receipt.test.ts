// Broker receipts (src/wire/receipt.ts): the signed verdict a publisher receives, carrying the id AND the SHA-256 of
// the exact bytes it is about. Round trip, and a decoder that refuses anything else with a code (never a foreign
// parser error).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  acceptedReceipt,
  decodeReceipt,
  decodeReceiptBySchema,
  encodeReceipt,
  rejectedReceipt,
} from '../../src/wire/receipt.js';
import { envelopeHash } from '../../src/envelope/provenance.js';
import { BrokerError } from '../../src/wire/errors.js';
import { thrown } from '../broker/fixtures.js';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

/** SHA-256 of the empty string (FIPS 180-4 test value e3b0c442…b855), base64url without padding. */
const H = '47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU';
/** Another well-formed hash: SHA-256("abc") (ba7816bf…15ad). */
const H2 = 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0';

const accepted = { v: 1, id: 'm', hash: H, status: 'accepted', deliveries: 1, at: 1 };
const rejected = { v: 1, id: 'm', hash: H, status: 'rejected', code: 'E_REPLAY', message: 'x', at: 1 };

function without<T extends object>(o: T, key: keyof T): Partial<T> {
  const copy = { ...o };
  delete copy[key];
  return copy;
}

describe('receipts', () => {
  it('the hash constants are what envelopeHash gives (SHA-256, base64url, 43 characters)', () => {
    expect(envelopeHash(new Uint8Array(0))).toBe(H);
    expect(envelopeHash(enc('abc'))).toBe(H2);
  });

  it('the well-formed bases of the refusal cases below decode (so each case fails for its own reason)', () => {
    expect(decodeReceipt(enc(accepted))).toEqual(accepted);
    expect(decodeReceipt(enc(rejected))).toEqual(rejected);
  });

  it('accepted: encode → decode round trip, and the wire JSON has exactly these fields', () => {
    const r = acceptedReceipt('msg-1', H2, 3, 1_700_000_000_123);
    expect(JSON.parse(new TextDecoder().decode(encodeReceipt(r)))).toEqual({
      v: 1,
      id: 'msg-1',
      hash: H2,
      status: 'accepted',
      deliveries: 3,
      at: 1_700_000_000_123,
    });
    expect(decodeReceipt(encodeReceipt(r))).toEqual(r);
  });

  it('rejected: hash, code, message and path travel; a cause never does', () => {
    const err = new BrokerError('E_UNKNOWN_ELEMENT', 'Patient.foo: not an element of Patient', {
      path: 'Patient.foo',
      cause: new Error('secret detail'),
    });
    const r = rejectedReceipt('msg-2', H, err, 5);
    const wire = JSON.parse(new TextDecoder().decode(encodeReceipt(r))) as Record<string, unknown>;
    expect(wire).toEqual({
      v: 1,
      id: 'msg-2',
      hash: H,
      status: 'rejected',
      code: 'E_UNKNOWN_ELEMENT',
      message: 'Patient.foo: not an element of Patient',
      path: 'Patient.foo',
      at: 5,
    });
    expect(decodeReceipt(encodeReceipt(r))).toEqual(r);
    const noPath = rejectedReceipt('msg-3', H2, new BrokerError('E_REPLAY', 'seen'), 6);
    expect('path' in noPath).toBe(false);
    expect(noPath.hash).toBe(H2);
    expect(decodeReceipt(encodeReceipt(noPath))).toEqual(noPath);
  });

  it.each([
    ['an unknown code', { ...rejected, code: 'E_NOPE' }],
    ['an extra field (accepted)', { ...accepted, resource: { name: 'x' } }],
    ['an extra field (rejected)', { ...rejected, stack: 'x' }],
    ['a code on an accepted receipt', { ...accepted, code: 'E_REPLAY' }],
    ['another version', { ...accepted, v: 2 }],
    ['a negative delivery count', { ...accepted, deliveries: -1 }],
    ['a fractional delivery count', { ...accepted, deliveries: 1.5 }],
    ['an unknown status', { ...without(accepted, 'deliveries'), status: 'maybe' }],
    ['no id', without(accepted, 'id')],
    ['no hash (accepted, the format before hashes)', without(accepted, 'hash')],
    ['no hash (rejected)', without(rejected, 'hash')],
    ['a hash one character short', { ...accepted, hash: H.slice(1) }],
    ['a hash one character long', { ...accepted, hash: `${H}A` }],
    ['a padded hash', { ...accepted, hash: `${H}=` }],
    ['a hash in standard base64 (+ and /)', { ...accepted, hash: H.replace('-', '+').replace('_', '/') }],
    ['a hash in hex', { ...accepted, hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' }],
    ['an empty hash', { ...rejected, hash: '' }],
    ['a hash that is not a string', { ...accepted, hash: 12345 }],
    ['a null hash', { ...rejected, hash: null }],
    ['a time that is a string', { ...accepted, at: '1' }],
    ['a delivery count that is a string', { ...accepted, deliveries: '1' }],
    [
      'a delivery count beyond 2^53 − 1 (an integer to JavaScript, not to the schema)',
      { ...accepted, deliveries: 1e300 },
    ],
    [
      'a time that is not finite (1e999 parses to Infinity)',
      '{"v":1,"id":"m","hash":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","status":"accepted","deliveries":1,"at":1e999}',
    ],
    ['an id that is a number', { ...accepted, id: 7 }],
    ['a status with another case', { ...accepted, status: 'Accepted' }],
    [
      'an extra __proto__ member (accepted)',
      JSON.parse(`{"__proto__":{"x":1},${JSON.stringify(accepted).slice(1)}`) as unknown,
    ],
    ['an array', [1]],
    ['null', null],
  ])('refuses %s with E_ENVELOPE_INVALID', (_name, value) => {
    const e = thrown(() => decodeReceipt(enc(value)));
    expect(e).toBeInstanceOf(BrokerError);
    expect([e.code, e.message]).toEqual(['E_ENVELOPE_INVALID', 'not a broker receipt']);
  });

  it('refuses bytes that are not JSON, or not UTF-8, with E_ENVELOPE_INVALID (not a SyntaxError quoting the input)', () => {
    for (const bytes of [enc('{"v":1,"id":"Vexlander'), enc(''), new Uint8Array([0x7b, 0xff, 0x7d])]) {
      const e = thrown(() => decodeReceipt(bytes));
      expect(e).toBeInstanceOf(BrokerError);
      expect([e.code, e.message]).toEqual(['E_ENVELOPE_INVALID', 'not a broker receipt']);
    }
  });

  it('decodes exactly as the schema does (the accepted fast path never accepts what the schema refuses, or differs)', () => {
    const outcome = (f: () => unknown): unknown => {
      try {
        return { ok: f() };
      } catch (e) {
        return { refused: (e as BrokerError).code };
      }
    };
    // Mostly well-formed (so the fast path's acceptances are reached), else a near miss or any JSON value.
    const mostly = (good: fc.Arbitrary<unknown>, miss: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
      fc.oneof(
        { weight: 8, arbitrary: good },
        { weight: 1, arbitrary: miss },
        { weight: 1, arbitrary: fc.jsonValue() },
      );
    const fields = {
      v: mostly(fc.constant(1), fc.constantFrom(2, 1.5, 0, '1')),
      id: mostly(fc.string(), fc.constantFrom(7, null)),
      hash: mostly(fc.constantFrom(H, H2), fc.constantFrom(H.slice(1), `${H}=`, '', H.replace('-', '+'))),
      status: mostly(fc.constant('accepted'), fc.constantFrom('rejected', 'Accepted')),
      deliveries: mostly(
        fc.nat(),
        fc.oneof(fc.integer(), fc.double(), fc.constantFrom(1e300, 2 ** 53, 2 ** 53 - 1, -0, -1)),
      ),
      at: mostly(fc.nat(), fc.oneof(fc.double({ noNaN: true }), fc.constantFrom(1e308, -1, '1'))),
    };
    const receiptLike = fc.oneof(
      // Accepted-shaped: the six fields, each mostly well-formed, sometimes not.
      fc.record(fields),
      // Anything near a receipt: any subset of its fields, a rejection's, and a stray one.
      fc.record(
        {
          ...fields,
          code: mostly(fc.constant('E_REPLAY'), fc.constantFrom('E_SIGNATURE', 'nope')),
          message: mostly(fc.string(), fc.constant(3)),
          extra: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
    );
    let accepted = 0;
    fc.assert(
      fc.property(receiptLike, (r) => {
        const bytes = enc(r);
        const fast = outcome(() => decodeReceipt(bytes));
        expect(fast).toEqual(outcome(() => decodeReceiptBySchema(bytes)));
        if ((fast as { ok?: { status?: string } }).ok?.status === 'accepted') accepted += 1;
      }),
      { numRuns: 3000, seed: 20261202 },
    );
    // The generator reaches the fast path's acceptances, not only refusals.
    expect(accepted).toBeGreaterThan(20);
  });
});
