// Value filters (profile `where`, FHIR slicing by a `value` discriminator) in the projector: only the items of a
// repeating element whose discriminator holds one of the listed values pass; the filter is judged on the input
// item, before transforms and masking; anything it cannot judge is withheld. Synthetic people only, plus the
// shipped notification and billing profiles on examples/patient.json, and a fast-check property.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import type { ItemFilterDef } from '../../src/catalog/types.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import type { Json } from './fixtures.js';
import { KEY_A, PROFILE_URL, containers, deepFreeze, hasEmpty, profile, refToken } from './fixtures.js';

const ctx = { pseudonymize: pseudonymizer(KEY_A) };
/** The id the profiles below give the Patient (none delivers its id): the subscriber's keyed pseudonym of it. */
const ID = ctx.pseudonymize('where-test-1');
const META = { profile: [PROFILE_URL] };
const DAR = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }] };

const PHONE = { system: 'phone', value: '555-0100-2001', use: 'home' };
const FAX = { system: 'fax', value: '555-0100-2002', use: 'work' };
const EMAIL = { system: 'email', value: 'orla.testwick@example.org', _value: { id: 'ev1' } };
const NO_SYSTEM = { value: '555-0100-2003', use: 'home' };
const EXT_ONLY = {
  _system: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] },
  value: '555-0100-2004',
};
const MOBILE = { system: 'phone', value: '555-0100-2005', use: 'mobile' };
const MRN = {
  system: 'urn:oid:2.16.840.1.113883.19.5',
  value: 'MRN-0042-TEST',
  assigner: { display: 'Testwick Clinic' },
};
const SSN = { system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-00-0042' };

const PATIENT: Json = {
  resourceType: 'Patient',
  id: 'where-test-1',
  identifier: [SSN, MRN],
  name: [{ family: 'Testwick', given: ['Orla'] }],
  telecom: [PHONE, FAX, EMAIL, NO_SYSTEM, EXT_ONLY, MOBILE],
  gender: 'female',
  contact: [{ name: { family: 'Testwick' }, telecom: [FAX, PHONE] }, { telecom: [FAX] }],
};

function run(
  allow: string[],
  where: Record<string, ItemFilterDef>,
  more: Parameters<typeof profile>[2] = {},
  res: Json = PATIENT,
): Json {
  return compileProfile(profile(res['resourceType'] as string, allow, { ...more, where }))(
    deepFreeze(structuredClone(res)),
    ctx,
  );
}

describe('where: keeping some items of a repeating element', () => {
  it('keeps the items whose discriminator is listed, in order; absent, extension-only or unlisted systems go', () => {
    expect(run(['Patient.telecom'], { 'Patient.telecom': { system: ['phone', 'email'] } })).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
      telecom: [PHONE, EMAIL, MOBILE],
    });
    expect(run(['Patient.telecom'], { 'Patient.telecom': { system: ['fax'] } })['telecom']).toEqual([FAX]);
  });

  it('several discriminators must all hold', () => {
    expect(
      run(['Patient.telecom'], { 'Patient.telecom': { system: ['phone'], use: ['mobile', 'work'] } })['telecom'],
    ).toEqual([MOBILE]);
  });

  it('the discriminator need not be delivered: a filter around an allowed descendant', () => {
    const out = run(['Patient.telecom.value'], { 'Patient.telecom': { system: ['email'] } });
    expect(out).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
      telecom: [{ value: EMAIL.value, _value: EMAIL._value }],
    });
  });

  it('applies under an allowed ancestor (the whole resource) and leaves the rest whole', () => {
    const out = run(['Patient'], {
      'Patient.telecom': { system: ['email'] },
      'Patient.identifier': { system: [MRN.system] },
    });
    expect(out).toEqual({ ...PATIENT, meta: META, telecom: [EMAIL], identifier: [MRN] });
  });

  it('applies inside every item of a repeating ancestor (Patient.contact.telecom); an item left empty goes', () => {
    const out = run(['Patient.contact'], { 'Patient.contact.telecom': { system: ['phone'] } });
    expect(out['contact']).toEqual([{ name: { family: 'Testwick' }, telecom: [PHONE] }]);
    // The top-level telecom is another element: not filtered.
    expect(
      run(['Patient.telecom', 'Patient.contact'], { 'Patient.contact.telecom': { system: ['phone'] } })['telecom'],
    ).toEqual(PATIENT['telecom']);
  });

  it('no item left: the element is absent, and markMasked marks it like any withheld element', () => {
    const where = { 'Patient.telecom': { system: ['pager'] } };
    expect(run(['Patient.name', 'Patient.telecom'], where)).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
      name: PATIENT['name'],
    });
    const masked = run(['Patient.name', 'Patient.telecom'], where, { markMasked: true });
    expect(masked['telecom']).toEqual([DAR]);
    expect(masked['identifier']).toEqual([DAR]);
  });

  it('is judged on the input, before transforms: pseudonymised MRN only; a dropped discriminator still filters', () => {
    const mrn = run(
      ['Patient.identifier'],
      { 'Patient.identifier': { system: [MRN.system] } },
      { transforms: { 'Patient.identifier': 'pseudonym' } },
    );
    expect(mrn['identifier']).toEqual([{ system: MRN.system, value: refToken(KEY_A, MRN.value) }]);
    const noSystem = run(
      ['Patient.telecom'],
      { 'Patient.telecom': { system: ['phone'] } },
      { transforms: { 'Patient.telecom.system': 'drop' } },
    );
    expect(noSystem['telecom']).toEqual([
      { value: PHONE.value, use: 'home' },
      { value: MOBILE.value, use: 'mobile' },
    ]);
  });

  it('applies to contained resources of its type', () => {
    const obs: Json = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'synthetic' },
      contained: [{ resourceType: 'Patient', id: 'p1', telecom: [FAX, EMAIL] }],
      subject: { reference: '#p1' },
    };
    const out = run(
      ['Observation.status', 'Observation.subject', 'Observation.contained'],
      { 'Patient.telecom': { system: ['email'] } },
      { contained: { Patient: ['Patient.telecom'] } },
      obs,
    );
    expect(out['contained']).toEqual([{ resourceType: 'Patient', id: 'p1', telecom: [EMAIL] }]);
    const none = run(
      ['Observation.status', 'Observation.subject', 'Observation.contained'],
      { 'Patient.telecom': { system: ['sms'] } },
      { contained: { Patient: ['Patient.telecom'] } },
      obs,
    );
    expect(none).toEqual({ resourceType: 'Observation', meta: META, status: 'final' });
  });

  it('shares nothing with the input and never emits an empty array', () => {
    const input = deepFreeze(structuredClone(PATIENT));
    const out = compileProfile(
      profile('Patient', ['Patient'], {
        where: { 'Patient.telecom': { system: ['nothing'] }, 'Patient.contact.telecom': { system: ['email'] } },
      }),
    )(input, ctx);
    expect(out).not.toHaveProperty('telecom');
    expect(out['contact']).toEqual([{ name: { family: 'Testwick' } }]);
    expect([...containers(out)].filter((c) => containers(input).has(c))).toEqual([]);
    expect(hasEmpty(out)).toBe(false);
  });
});

describe('where: fail safe (what the loader rejects, if it ever reached the projector)', () => {
  it('a discriminator value that is not a string, or a discriminator that is an object, passes nothing', () => {
    const odd = { ...PATIENT, telecom: [{ system: 5, value: 'x' }, { system: ['phone'], value: 'y' }, PHONE] };
    expect(run(['Patient.telecom'], { 'Patient.telecom': { system: ['5', 'phone'] } }, {}, odd)['telecom']).toEqual([
      PHONE,
    ]);
    expect(run(['Patient.telecom'], { 'Patient.telecom': { period: ['x'] } })).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
    });
    expect(
      run(['Patient.telecom'], { 'Patient.telecom': { toString: ['x'], __proto__: ['x'] } as ItemFilterDef }),
    ).toEqual({ resourceType: 'Patient', id: ID, meta: META });
    expect(run(['Patient.telecom'], { 'Patient.telecom': { system: [] } })).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
    });
  });

  it('a filter on a primitive withholds it and its extensions; an unresolvable path withholds what it resolved; the resource itself, everything', () => {
    const p = { ...PATIENT, name: [{ family: 'Testwick', given: ['Orla', 'Mae'], _given: [null, { id: 'g2' }] }] };
    expect(run(['Patient.name'], { 'Patient.name.given': { id: ['g2'] } }, {}, p)['name']).toEqual([
      { family: 'Testwick' },
    ]);
    expect(run(['Patient.name', 'Patient.telecom'], { 'Patient.telecom.nonsense': { system: ['phone'] } })).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
      name: PATIENT['name'],
    });
    expect(run(['Patient.name', 'Patient.telecom'], { Patient: { id: ['where-test-1'] } })).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
    });
    expect(run(['Patient.name', 'Patient.telecom'], { 'Patient..telecom': { system: ['phone'] } })).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
    });
  });

  it('a single object where an array belongs is filtered like an item', () => {
    const odd = { ...PATIENT, telecom: FAX };
    expect(run(['Patient.name', 'Patient.telecom'], { 'Patient.telecom': { system: ['phone'] } }, {}, odd)).toEqual({
      resourceType: 'Patient',
      id: ID,
      meta: META,
      name: PATIENT['name'],
    });
  });
});

describe('the shipped profiles on examples/patient.json (patient-contact by where, patient-billing by identifiers)', () => {
  const catalog = loadCatalog({
    subjects: new URL('../../subjects', import.meta.url).pathname,
    profiles: new URL('../../fhir-profiles', import.meta.url).pathname,
  });
  const demo = JSON.parse(readFileSync(new URL('../../examples/patient.json', import.meta.url), 'utf8')) as Json;
  const telecom = demo['telecom'] as Json[];
  const identifier = demo['identifier'] as Json[];

  it('notification (patient-contact) gets the phone and email contact points, not the fax', () => {
    const def = catalog.profiles.get('patient-contact');
    if (def === undefined) throw new Error('patient-contact is not in the shipped catalog');
    expect(telecom.map((t) => t['system'])).toEqual(['phone', 'fax', 'email']);
    const out = compileProfile(def)(deepFreeze(structuredClone(demo)), ctx);
    expect(out['telecom']).toEqual([telecom[0], telecom[2]]);
    expect(out['name']).toEqual(demo['name']);
  });

  it('billing (patient-billing) gets the MRN, not the SSN', () => {
    const def = catalog.profiles.get('patient-billing');
    if (def === undefined) throw new Error('patient-billing is not in the shipped catalog');
    expect(identifier.map((i) => i['system'])).toEqual([
      'urn:oid:2.16.840.1.113883.19.5',
      'http://hl7.org/fhir/sid/us-ssn',
    ]);
    const out = compileProfile(def)(deepFreeze(structuredClone(demo)), ctx);
    expect(out['identifier']).toEqual([identifier[0]]);
    expect(JSON.stringify(out)).not.toContain('999-41-7731');
  });
});

describe('where: property (fast-check)', () => {
  const SYSTEMS = ['phone', 'fax', 'email', 'pager', 'url', 'sms', 'other'];
  const contactPoint = fc.record(
    {
      system: fc.oneof(
        fc.constantFrom(...SYSTEMS),
        fc.constantFrom('PHONE', '', 'e-mail'),
        fc.integer(),
        fc.constant(null),
      ),
      value: fc.stringMatching(/^[a-z0-9@.-]{1,12}$/),
      use: fc.constantFrom('home', 'work', 'mobile'),
    },
    { requiredKeys: ['value'] },
  );

  it('every delivered telecom item comes from an input item with an allowed system, all such items are delivered, in order', () => {
    fc.assert(
      fc.property(
        fc.array(contactPoint, { maxLength: 8 }),
        fc.subarray(SYSTEMS, { minLength: 1 }),
        fc.constantFrom('Patient.telecom', 'Patient.telecom.value', 'Patient'),
        fc.boolean(),
        (items, allowed, allow, markMasked) => {
          const input: Json = { resourceType: 'Patient', id: 'prop-1', gender: 'other', telecom: items };
          const out = compileProfile(
            profile('Patient', [allow], { markMasked, where: { 'Patient.telecom': { system: allowed } } }),
          )(deepFreeze(structuredClone(input)), ctx);
          // Written independently of src/: the items whose system is a string in the allowed list.
          const kept = items.filter((t) => typeof t.system === 'string' && allowed.includes(t.system));
          const expected = allow === 'Patient.telecom.value' ? kept.map((t) => ({ value: t.value })) : kept;
          if (expected.length > 0) expect(out['telecom']).toEqual(expected);
          // The input had a telecom the profile withheld: markMasked says so (whatever the allow-list).
          else if (markMasked) expect(out['telecom']).toEqual([DAR]);
          else expect(out).not.toHaveProperty('telecom');
          for (const t of (out['telecom'] as Json[] | undefined) ?? []) {
            if ('system' in t) expect(allowed).toContain(t['system']);
          }
          expect(hasEmpty(out)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});
