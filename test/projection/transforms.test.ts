import { describe, expect, it } from 'vitest';
import {
  RESTRICTED_ZIP3,
  pseudonym,
  pseudonymIdentifier,
  pseudonymReference,
  year,
  yearPeriod,
  zip3,
} from '../../src/projection/transforms.js';

const ctx = { pseudonymize: (v: string): string => `P(${v})` };

describe('year (45 CFR 164.514(b)(2)(i)(C))', () => {
  it.each([
    ['1974-12-25', '1974'],
    ['1974-12', '1974'],
    ['1974', '1974'],
    ['1974-12-25T14:35:45-05:00', '1974'],
    ['2015-01-17T16:00:00.123Z', '2015'],
  ])('%s → %s', (input, expected) => {
    expect(year(input)).toBe(expected);
  });

  it.each([['74-12-25'], ['1974-13-01'], ['25/12/1974'], ['']])('withholds what is not a FHIR date: %s', (input) => {
    expect(year(input)).toBeUndefined();
  });

  it('withholds non-strings', () => {
    expect(year(1974)).toBeUndefined();
    expect(year({ start: '1974' })).toBeUndefined();
  });

  it('yearPeriod keeps only the years of start and end', () => {
    expect(
      yearPeriod({ id: 'p', start: '2013-04-02T09:30:10+01:00', end: '2014-01-01', _start: { extension: [] } }),
    ).toEqual({ start: '2013', end: '2014' });
    expect(yearPeriod({ end: '2002' })).toEqual({ end: '2002' });
    expect(yearPeriod({ id: 'p' })).toBeUndefined();
  });
});

describe('zip3 (45 CFR 164.514(b)(2)(i)(B))', () => {
  it('keeps the first three digits of a US ZIP or ZIP+4', () => {
    expect(zip3('02139')).toBe('021');
    expect(zip3('12345-6789')).toBe('123');
    expect(zip3('123456789')).toBe('123');
  });

  it('turns each of the 17 restricted prefixes HHS lists into 000', () => {
    const hhs = [
      '036',
      '059',
      '063',
      '102',
      '203',
      '556',
      '692',
      '790',
      '821',
      '823',
      '830',
      '831',
      '878',
      '879',
      '884',
      '890',
      '893',
    ];
    expect([...RESTRICTED_ZIP3].sort()).toEqual(hhs);
    for (const p of hhs) expect(zip3(`${p}42`)).toBe('000');
    expect(zip3('03601-1234')).toBe('000');
    expect(zip3('03701')).toBe('037');
  });

  it('withholds a postal code that is not a US ZIP', () => {
    expect(zip3('3999')).toBeUndefined();
    expect(zip3('K1A 0B1')).toBeUndefined();
    expect(zip3('1234')).toBeUndefined();
    expect(zip3(2139)).toBeUndefined();
  });
});

describe('pseudonym', () => {
  it('maps a string leaf through the context, withholds others', () => {
    expect(pseudonym('12345', ctx)).toBe('P(12345)');
    expect(pseudonym(12345, ctx)).toBeUndefined();
  });

  it('on a Reference: pseudonymises reference, keeps type, removes everything else (display, identifier, extensions)', () => {
    const ref = {
      id: 'r1',
      reference: 'Patient/f001',
      _reference: { extension: [{ url: 'http://example.org/x', valueString: 'MRN-7731-DEMO' }] },
      display: 'P. van de Heuvel',
      _display: { id: 'x' },
      identifier: { value: '1' },
      type: 'Patient',
      extension: [{ url: 'http://example.org/y', valueString: 'MRN-7731-DEMO' }],
    };
    expect(pseudonymReference(ref, ctx)).toEqual({ reference: 'P(Patient/f001)', type: 'Patient' });
    expect(ref.reference).toBe('Patient/f001');
  });

  it('on a Reference: keeps a local reference, withholds a display-only reference', () => {
    expect(pseudonymReference({ reference: '#home', display: "Client's home" }, ctx)).toEqual({ reference: '#home' });
    expect(pseudonymReference({ display: 'Acme Healthcare' }, ctx)).toBeUndefined();
  });

  it('on an Identifier: pseudonymises value, keeps system and type, removes the rest', () => {
    const type = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] };
    const id = {
      use: 'usual',
      type,
      system: 'urn:oid:1.2.36.146.595.217.0.1',
      value: '12345',
      _value: { extension: [{ url: 'http://example.org/x', valueString: 'Quillfeather' }] },
      period: { start: '2001-05-06' },
      assigner: { display: 'Acme Healthcare' },
      extension: [{ url: 'http://example.org/y', valueString: 'Quillfeather' }],
    };
    expect(pseudonymIdentifier(id, ctx)).toEqual({ type, system: 'urn:oid:1.2.36.146.595.217.0.1', value: 'P(12345)' });
    expect(pseudonymIdentifier({ use: 'usual', assigner: { display: 'Acme Healthcare' } }, ctx)).toBeUndefined();
  });
});
