// validateResource on synthetic inputs: one bad input per check, each asserting the exact code and path,
// and that the message carries no value from the input (the synthetic PHI below is distinctive on purpose).
import { fhir as packageRootFhir } from '@fhir-typescript/r4-core';
import * as fhirModelModule from '@fhir-typescript/r4-core/dist/fhir.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BrokerError, ERROR_CODES } from '../../src/wire/errors.js';
import type { ValidationLimits } from '../../src/fhir/limits.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource, validationLimits } from '../../src/fhir/validate.js';

const NAME = 'Zephyrine Quillfeather-Oyelaran';
const SSN = '999-41-7283';
const DOB = '1961-03-17';
const PHI = [NAME, SSN, DOB, 'Quillfeather', '7283'];

/** A valid synthetic Patient; every test derives its bad variant from a fresh copy. */
function patient(): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    id: 'syn-zq-1',
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-ssn', value: SSN }],
    name: [{ family: 'Quillfeather-Oyelaran', given: ['Zephyrine'], text: NAME }],
    gender: 'female',
    birthDate: DOB,
    contact: [
      {
        name: { family: 'Quillfeather', given: ['Ignatius'] },
        telecom: [{ system: 'phone', value: '+1 555 0199 7283' }],
      },
    ],
    extension: [
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName', valueString: 'Quillfeather-Moss' },
    ],
  };
}

function observation(): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    id: 'syn-obs-1',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8302-2' }], text: `Height of ${NAME}` },
    subject: { reference: 'Patient/syn-zq-1', display: NAME },
    valueQuantity: { value: 172.4, unit: 'cm', system: 'http://unitsofmeasure.org', code: 'cm' },
  };
}

/** String values of `json` that could be PHI (every value except resourceType names, which paths use). */
function values(json: unknown, out: string[] = [], key = ''): string[] {
  if (typeof json === 'string') {
    if (key !== 'resourceType') out.push(json);
  } else if (Array.isArray(json)) for (const v of json) values(v, out, key);
  else if (typeof json === 'object' && json !== null) for (const [k, v] of Object.entries(json)) values(v, out, k);
  return out;
}

function rejection(input: unknown, limits: ValidationLimits = DEFAULT_VALIDATION_LIMITS): BrokerError {
  try {
    validateResource(input, limits);
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError);
    const err = e as BrokerError;
    for (const v of [...PHI, ...values(input).filter((s) => s.length >= 4)]) expect(err.message).not.toContain(v);
    return err;
  }
  throw new Error('expected a rejection');
}

function expectRejected(
  input: unknown,
  code: keyof typeof ERROR_CODES,
  path: string | undefined,
  limits?: ValidationLimits,
): BrokerError {
  const err = rejection(input, limits);
  expect({ code: err.code, path: err.path }).toEqual({ code, path });
  if (path !== undefined) expect(err.message.startsWith(`${path}: `)).toBe(true);
  return err;
}

describe('validateResource accepts', () => {
  it('the synthetic Patient and Observation, returning the same object', () => {
    const p = patient();
    expect(validateResource(p, DEFAULT_VALIDATION_LIMITS)).toBe(p);
    expect(validateResource(observation(), DEFAULT_VALIDATION_LIMITS).resourceType).toBe('Observation');
  });

  it('strings with Unicode spaces (U+00A0, U+202F), which r4-core alone would reject', () => {
    const p = { ...patient(), name: [{ family: 'Quill\u00a0feather', given: ['Zeph\u202fyrine'] }] };
    expect(validateResource(p, DEFAULT_VALIDATION_LIMITS)).toBe(p);
  });

  it('aligned primitive-extension arrays with null gaps, and extension-only primitives', () => {
    const ext = {
      extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier', valueCode: 'BR' }],
    };
    const p = { ...patient(), name: [{ given: ['Zephyrine', 'Ada'], _given: [null, ext] }], _active: ext };
    expect(validateResource(p, DEFAULT_VALIDATION_LIMITS)).toBe(p);
  });

  it('a resource without id when requireId is off', () => {
    const { id: _, ...p } = patient();
    expect(validateResource(p, validationLimits({ requireId: false }))).toBe(p);
  });
});

describe('validateResource rejects', () => {
  it.each([
    ['a string', NAME],
    ['a number', 7283],
    ['null', null],
    ['an array', [patient()]],
  ])('%s: E_NOT_FHIR', (_, input) => {
    expectRejected(input, 'E_NOT_FHIR', undefined);
  });

  it('no resourceType, or a non-string one: E_NOT_FHIR at resourceType', () => {
    const { resourceType: _, ...p } = patient();
    expectRejected(p, 'E_NOT_FHIR', 'resourceType');
    expectRejected({ ...patient(), resourceType: ['Patient'] }, 'E_NOT_FHIR', 'resourceType');
  });

  it('an unknown resource type (and R4B SubscriptionStatus): E_UNKNOWN_RESOURCE_TYPE', () => {
    expectRejected({ ...patient(), resourceType: 'Quillfeather' }, 'E_UNKNOWN_RESOURCE_TYPE', 'resourceType');
    expectRejected({ resourceType: 'SubscriptionStatus', id: 'x' }, 'E_UNKNOWN_RESOURCE_TYPE', 'resourceType');
  });

  it.each([
    ['at the top', (p: Record<string, unknown>) => ({ ...p, nickname: NAME }), 'Patient.nickname'],
    [
      'in a datatype',
      (p: Record<string, unknown>) => ({ ...p, name: [{ family: 'Quillfeather', bogus: NAME }] }),
      'Patient.name[0].bogus',
    ],
    [
      'in a backbone element',
      (p: Record<string, unknown>) => ({ ...p, contact: [{ gender: 'male', bogus: SSN }] }),
      'Patient.contact[0].bogus',
    ],
    [
      'in a datatype inside a backbone element',
      (p: Record<string, unknown>) => ({ ...p, contact: [{ name: { family: 'Q', bogus: NAME } }] }),
      'Patient.contact[0].name.bogus',
    ],
    [
      'in an extension',
      (p: Record<string, unknown>) => ({
        ...p,
        extension: [{ url: 'http://example.org/x', valueString: NAME, note: SSN }],
      }),
      'Patient.extension[0].note',
    ],
    [
      'in a nested extension',
      (p: Record<string, unknown>) => ({
        ...p,
        extension: [
          {
            url: 'http://example.org/x',
            extension: [
              { url: 'a', valueString: 'x1x1' },
              { url: 'b', bogus: NAME },
            ],
          },
        ],
      }),
      'Patient.extension[0].extension[1].bogus',
    ],
    [
      'in a modifierExtension',
      (p: Record<string, unknown>) => ({ ...p, modifierExtension: [{ url: 'http://example.org/x', bogus: NAME }] }),
      'Patient.modifierExtension[0].bogus',
    ],
    [
      'a bad choice suffix',
      (p: Record<string, unknown>) => ({ ...p, extension: [{ url: 'http://example.org/x', valueFoo: NAME }] }),
      'Patient.extension[0].valueFoo',
    ],
    [
      'a choice type the element does not allow',
      (p: Record<string, unknown>) => ({ ...p, deceasedString: DOB }),
      'Patient.deceasedString',
    ],
    [
      'in a contained resource',
      (p: Record<string, unknown>) => ({
        ...p,
        contained: [{ resourceType: 'Organization', id: 'o1', name: 'Quill Clinic', bogus: SSN }],
      }),
      'Patient.contained[0].bogus',
    ],
    [
      'in a primitive extension',
      (p: Record<string, unknown>) => ({ ...p, _birthDate: { bogus: DOB } }),
      'Patient._birthDate.bogus',
    ],
    ['`_` on a non-primitive', (p: Record<string, unknown>) => ({ ...p, _name: { id: 'n1' } }), 'Patient._name'],
    [
      'a Medplum-only Meta element',
      (p: Record<string, unknown>) => ({ ...p, meta: { project: 'p-1234' } }),
      'Patient.meta.project',
    ],
    [
      'a key that is not an element name (shown as [?])',
      (p: Record<string, unknown>) => ({ ...p, [NAME]: SSN }),
      'Patient.[?]',
    ],
  ])('an unknown element %s: E_UNKNOWN_ELEMENT', (_, make, path) => {
    const err = expectRejected(make(patient()), 'E_UNKNOWN_ELEMENT', path);
    expect(err.message).not.toContain(NAME);
  });

  it('an unknown element inside a Bundle entry resource', () => {
    const bundle = {
      resourceType: 'Bundle',
      id: 'b1',
      type: 'collection',
      entry: [{ resource: { ...observation(), bogus: NAME } }],
    };
    expectRejected(bundle, 'E_UNKNOWN_ELEMENT', 'Bundle.entry[0].resource.bogus');
  });

  it('a contained resource of unknown type or without resourceType', () => {
    expectRejected(
      { ...patient(), contained: [{ resourceType: 'Quillfeather', id: 'c' }] },
      'E_UNKNOWN_RESOURCE_TYPE',
      'Patient.contained[0].resourceType',
    );
    expectRejected({ ...patient(), contained: [{ id: 'c', name: NAME }] }, 'E_FHIR_INVALID', 'Patient.contained[0]');
  });

  it.each([
    ['a single value where an array is expected', { name: { family: 'Quillfeather' } }, 'Patient.name'],
    ['an array where a single value is expected', { birthDate: [DOB] }, 'Patient.birthDate'],
    ['an object where a primitive is expected', { name: [{ family: { value: NAME } }] }, 'Patient.name[0].family'],
    ['a primitive where an object is expected', { maritalStatus: NAME }, 'Patient.maritalStatus'],
    ['a number where a string is expected', { birthDate: 19610317 }, 'Patient.birthDate'],
    ['a string where a boolean is expected', { active: 'true' }, 'Patient.active'],
    ['null as a value', { gender: null }, 'Patient.gender'],
    ['an empty array', { identifier: [] }, 'Patient.identifier'],
    ['an empty string', { name: [{ family: '' }] }, 'Patient.name[0].family'],
    ['a primitive extension that is not an object', { _birthDate: DOB }, 'Patient._birthDate'],
    [
      'primitive-extension arrays of different length',
      { name: [{ given: [NAME, 'Ada'], _given: [null] }] },
      'Patient.name[0].given',
    ],
    [
      'null on both sides of a primitive-extension pair',
      { name: [{ given: [null, 'Ada'], _given: [null, { id: 'g2' }] }] },
      'Patient.name[0].given[0]',
    ],
    [
      'null in a primitive array without extension sibling',
      { name: [{ given: [NAME, null] }] },
      'Patient.name[0].given',
    ],
  ])('%s: E_FHIR_INVALID', (_, change, path) => {
    expectRejected({ ...patient(), ...change }, 'E_FHIR_INVALID', path);
  });

  it('a bad date (r4-core): E_FHIR_INVALID at the element', () => {
    const err = expectRejected({ ...patient(), birthDate: '1961-13-45' }, 'E_FHIR_INVALID', 'Patient.birthDate');
    expect(err.message).toBe('Patient.birthDate: not a valid FHIR date');
  });

  it('a bad dateTime in a choice element is named by its JSON name', () => {
    expectRejected(
      { ...observation(), effectiveDateTime: `${DOB}T25:61:00Z` },
      'E_FHIR_INVALID',
      'Observation.effectiveDateTime',
    );
  });

  describe('two forms of one choice element (FHIR R4 json.html: only one of name[x])', () => {
    it('deceasedBoolean and deceasedDateTime: E_FHIR_INVALID at the second, naming both', () => {
      const err = expectRejected(
        { ...patient(), deceasedBoolean: true, deceasedDateTime: `${DOB}T10:00:00Z` },
        'E_FHIR_INVALID',
        'Patient.deceasedDateTime',
      );
      expect(err.message).toBe(
        'Patient.deceasedDateTime: a second form of the choice element deceased[x] (Patient.deceasedBoolean is present)',
      );
    });

    it('effectivePeriod and effectiveDateTime, in either order', () => {
      const period = { start: `${DOB}T10:00:00Z` };
      expectRejected(
        { ...observation(), effectivePeriod: period, effectiveDateTime: `${DOB}T10:00:00Z` },
        'E_FHIR_INVALID',
        'Observation.effectiveDateTime',
      );
      expectRejected(
        { ...observation(), effectiveDateTime: `${DOB}T10:00:00Z`, effectivePeriod: period },
        'E_FHIR_INVALID',
        'Observation.effectivePeriod',
      );
    });

    it('at depth: two value[x] forms in an extension and in a component', () => {
      expectRejected(
        { ...patient(), extension: [{ url: 'http://example.org/x', valueString: NAME, valueCode: 'a' }] },
        'E_FHIR_INVALID',
        'Patient.extension[0].valueCode',
      );
      const component = { code: { text: 'c' }, valueString: 'a', valueBoolean: true };
      expectRejected(
        { ...observation(), component: [component] },
        'E_FHIR_INVALID',
        'Observation.component[0].valueBoolean',
      );
    });

    it("a primitive and its own _extension sibling are one form, not two; another form's sibling is a second", () => {
      const ext = { extension: [{ url: 'http://example.org/x', valueString: 'a' }] };
      expect(() =>
        validateResource({ ...patient(), deceasedBoolean: true, _deceasedBoolean: ext }, DEFAULT_VALIDATION_LIMITS),
      ).not.toThrow();
      expectRejected(
        { ...patient(), deceasedBoolean: true, _deceasedDateTime: ext },
        'E_FHIR_INVALID',
        'Patient._deceasedDateTime',
      );
    });
  });

  it('a code outside a required binding: E_FHIR_INVALID naming the element, not the code', () => {
    const err = expectRejected({ ...patient(), gender: 'quillfeathered' }, 'E_FHIR_INVALID', 'Patient.gender');
    expect(err.message).toBe('Patient.gender: code not in the required value set (AdministrativeGender)');
  });

  it('a missing required element (Observation.status, Extension.url)', () => {
    const { status: _, ...obs } = observation();
    expect(expectRejected(obs, 'E_FHIR_INVALID', 'Observation.status').message).toBe(
      'Observation.status: a required element is missing',
    );
    expectRejected({ ...patient(), extension: [{ valueString: NAME }] }, 'E_FHIR_INVALID', 'Patient.extension[0].url');
  });

  it('no id when requireId (the default)', () => {
    const { id: _, ...p } = patient();
    expectRejected(p, 'E_FHIR_INVALID', 'Patient.id');
  });

  it('too large: whole resource, reported at the resource', () => {
    const limits = validationLimits({ maxResourceSize: 400 });
    expectRejected({ ...patient(), address: [{ text: NAME.repeat(20) }] }, 'E_TOO_LARGE', 'Patient', limits);
    expect(JSON.stringify(patient()).length).toBeLessThan(800); // the default limit is far above
    expectRejected(
      { ...patient(), address: [{ line: Array.from({ length: 600 }, () => NAME.repeat(4)) }] },
      'E_TOO_LARGE',
      'Patient',
      validationLimits({ maxResourceSize: 65_536 }),
    );
  });

  it('too long: one string, reported at its element', () => {
    expectRejected(
      { ...patient(), name: [{ family: NAME.repeat(30) }] },
      'E_TOO_LARGE',
      'Patient.name[0].family',
      validationLimits({ maxStringLength: 500 }),
    );
    expectRejected({ ...patient(), photo: [{ data: 'QUJD'.repeat(150_000) }] }, 'E_TOO_LARGE', 'Patient.photo[0].data');
  });

  it('too many items in one array', () => {
    expectRejected(
      { ...patient(), name: Array.from({ length: 11 }, () => ({ text: NAME })) },
      'E_TOO_LARGE',
      'Patient.name',
      validationLimits({ maxArrayLength: 10 }),
    );
  });

  it('too deep: nested extensions beyond maxDepth', () => {
    let ext: Record<string, unknown> = { url: 'leaf', valueString: NAME };
    for (let i = 0; i < 20; i++) ext = { url: `level${i}`, extension: [ext] };
    const p = { ...patient(), extension: [ext] };
    // Patient(1) extension[](2) [0](3): each level adds an array and an object.
    const err = expectRejected(p, 'E_TOO_LARGE', `Patient${'.extension[0]'.repeat(16)}`, DEFAULT_VALIDATION_LIMITS);
    expect(err.message).toContain('(32)');
    expect(validateResource(p, validationLimits({ maxDepth: 64 }))).toBe(p);
  });

  it('never puts a value into the message (property: random PHI in a bad code, date, unknown element)', () => {
    fc.assert(
      // '#' keeps the value from being a valid code or date by chance, and from matching fixed message text.
      fc.property(
        fc.string({ minLength: 3, maxLength: 40 }).map((s) => `#${s}`),
        (phi) => {
          for (const bad of [
            { gender: phi },
            { birthDate: phi },
            { name: [{ bogus: phi }] },
            { telecom: [{ system: phi }] },
          ]) {
            const err = rejection({ ...patient(), ...bad });
            expect(err.message).not.toContain(phi);
            expect(JSON.stringify(err.toJSON())).not.toContain(JSON.stringify(phi).slice(1, -1));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('validation limits', () => {
  it('defaults are pinned and frozen', () => {
    expect(DEFAULT_VALIDATION_LIMITS).toEqual({
      maxResourceSize: 1_048_576,
      maxDepth: 32,
      maxStringLength: 524_288,
      maxArrayLength: 10_000,
      requireId: true,
    });
    expect(Object.isFrozen(DEFAULT_VALIDATION_LIMITS)).toBe(true);
    expect(Object.isFrozen(validationLimits({ maxDepth: 8 }))).toBe(true);
  });

  it('a wrong override is a caller mistake (TypeError)', () => {
    expect(() => validationLimits({ maxDepth: 0 })).toThrow(
      new TypeError('ValidationLimits.maxDepth must be a positive integer'),
    );
    expect(() => validationLimits({ maxResourceSize: 1.5 })).toThrow(TypeError);
  });
});

describe('calendar days', () => {
  it('a date, dateTime or instant naming a day that does not exist is E_FHIR_INVALID at its path', () => {
    for (const [json, path] of [
      [{ resourceType: 'Patient', id: 'p', birthDate: '1990-02-30' }, 'Patient.birthDate'],
      [{ resourceType: 'Patient', id: 'p', birthDate: '2023-02-29' }, 'Patient.birthDate'],
      [{ resourceType: 'Patient', id: 'p', deceasedDateTime: '2020-04-31T10:00:00Z' }, 'Patient.deceasedDateTime'],
      [
        { resourceType: 'Observation', id: 'o', status: 'final', code: { text: 'x' }, issued: '2021-13-01T00:00:00Z' },
        'Observation.issued',
      ],
    ] as const) {
      let err: unknown;
      try {
        validateResource(json, DEFAULT_VALIDATION_LIMITS);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'E_FHIR_INVALID', path });
      expect((err as Error).message).not.toMatch(/1990|2023|2020|2021/);
    }
  });

  it('real days, leap days and partial dates pass', () => {
    for (const birthDate of ['2024-02-29', '2000-02-29', '1990-12-31', '1990', '1990-02']) {
      expect(
        validateResource({ resourceType: 'Patient', id: 'p', birthDate }, DEFAULT_VALIDATION_LIMITS).resourceType,
      ).toBe('Patient');
    }
  });
});

describe('the FHIR model classes', () => {
  it("src/fhir/validate.ts imports r4-core's model module directly: the very namespace the package root exports as `fhir`", () => {
    // The package root also loads every ValueSet expansion, which validation never reads (docs/performance.md);
    // the deep import must be the same classes, not a copy or another version.
    expect(fhirModelModule).toBe(packageRootFhir);
    expect(typeof fhirModelModule.Patient).toBe('function');
  });
});
