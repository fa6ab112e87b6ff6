import { describe, expect, it } from 'vitest';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import { KEY_A, KEY_B, refBase32, refToken } from './fixtures.js';

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

describe('pseudonymizer (HMAC-SHA256, RFC 2104)', () => {
  const a = pseudonymizer(KEY_A);
  const b = pseudonymizer(KEY_B);

  it('the test base32 follows RFC 4648 §10 vectors', () => {
    expect(refBase32(new TextEncoder().encode('foobar'))).toBe('mzxw6ytboi');
    expect(refBase32(new TextEncoder().encode('f'))).toBe('my');
  });

  it('is base32 of the first 20 bytes of the HMAC, a valid FHIR id', () => {
    const t = a('12345');
    expect(t).toBe(refToken(KEY_A, '12345'));
    expect(t).toMatch(FHIR_ID);
    expect(t).toHaveLength(32);
  });

  it('same key, same token; other key, other token', () => {
    expect(a('12345')).toBe(pseudonymizer(new Uint8Array(KEY_A))('12345'));
    expect(a('12345')).not.toBe(b('12345'));
    expect(a('12345')).not.toBe(a('12346'));
  });

  it('keeps a literal reference a valid reference: Type/<token of id>, base and version dropped', () => {
    const token = refToken(KEY_A, 'example');
    expect(a('Patient/example')).toBe(`Patient/${token}`);
    expect(a('http://fhir.example.org/r4/Patient/example/_history/2')).toBe(`Patient/${token}`);
    expect(a('Practitioner/example')).toBe(`Practitioner/${token}`);
    // Not a resource type: the whole string is one value.
    expect(a('AC/DC')).toBe(refToken(KEY_A, 'AC/DC'));
  });

  it('keeps UUIDs UUID-shaped so urn:uuid references and ids stay linkable', () => {
    const id = 'fc712d1f-5a2e-4407-9c55-a2a2bad623c2';
    const t = a(id);
    expect(t).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a(`urn:uuid:${id}`)).toBe(`urn:uuid:${t}`);
    expect(a(`Patient/${id}`)).toBe(`Patient/${t}`);
    expect(t).not.toContain(id.slice(0, 8));
  });

  it('maps a local reference to #<token>', () => {
    expect(a('#home')).toBe(`#${refToken(KEY_A, 'home')}`);
  });

  it('rejects a short key as a caller mistake', () => {
    expect(() => pseudonymizer(new Uint8Array(8))).toThrow(TypeError);
    expect(() => pseudonymizer(new Uint8Array(8))).toThrow(/at least 16 bytes/);
  });
});
