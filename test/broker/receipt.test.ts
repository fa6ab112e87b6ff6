// Broker receipts (src/broker/receipt.ts): the signed verdict a publisher receives. Round trip, and a decoder that
// refuses anything else with a code (never a foreign parser error).
import { describe, expect, it } from 'vitest';
import { acceptedReceipt, decodeReceipt, encodeReceipt, rejectedReceipt } from '../../src/broker/receipt.js';
import { BrokerError } from '../../src/errors.js';
import { thrown } from './fixtures.js';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

describe('receipts', () => {
  it('accepted: encode → decode round trip, and the wire JSON has exactly these fields', () => {
    const r = acceptedReceipt('msg-1', 3, 1_700_000_000_123);
    expect(JSON.parse(new TextDecoder().decode(encodeReceipt(r)))).toEqual({ v: 1, id: 'msg-1', status: 'accepted', deliveries: 3, at: 1_700_000_000_123 });
    expect(decodeReceipt(encodeReceipt(r))).toEqual(r);
  });

  it('rejected: code, message and path travel; a cause never does', () => {
    const err = new BrokerError('E_UNKNOWN_ELEMENT', 'Patient.foo: not an element of Patient', { path: 'Patient.foo', cause: new Error('secret detail') });
    const r = rejectedReceipt('msg-2', err, 5);
    const wire = JSON.parse(new TextDecoder().decode(encodeReceipt(r))) as Record<string, unknown>;
    expect(wire).toEqual({ v: 1, id: 'msg-2', status: 'rejected', code: 'E_UNKNOWN_ELEMENT', message: 'Patient.foo: not an element of Patient', path: 'Patient.foo', at: 5 });
    expect(decodeReceipt(encodeReceipt(r))).toEqual(r);
    const noPath = rejectedReceipt('msg-3', new BrokerError('E_REPLAY', 'seen'), 6);
    expect('path' in noPath).toBe(false);
    expect(decodeReceipt(encodeReceipt(noPath))).toEqual(noPath);
  });

  it.each([
    ['an unknown code', { v: 1, id: 'm', status: 'rejected', code: 'E_NOPE', message: 'x', at: 1 }],
    ['an extra field (accepted)', { v: 1, id: 'm', status: 'accepted', deliveries: 1, at: 1, resource: { name: 'x' } }],
    ['an extra field (rejected)', { v: 1, id: 'm', status: 'rejected', code: 'E_REPLAY', message: 'x', at: 1, stack: 'x' }],
    ['a code on an accepted receipt', { v: 1, id: 'm', status: 'accepted', deliveries: 1, at: 1, code: 'E_REPLAY' }],
    ['another version', { v: 2, id: 'm', status: 'accepted', deliveries: 1, at: 1 }],
    ['a negative delivery count', { v: 1, id: 'm', status: 'accepted', deliveries: -1, at: 1 }],
    ['a fractional delivery count', { v: 1, id: 'm', status: 'accepted', deliveries: 1.5, at: 1 }],
    ['an unknown status', { v: 1, id: 'm', status: 'maybe', at: 1 }],
    ['no id', { v: 1, status: 'accepted', deliveries: 1, at: 1 }],
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
});
