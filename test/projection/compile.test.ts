import { describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/wire/errors.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import type { Json } from './fixtures.js';
import {
  HAVE_EXAMPLES,
  KEY_A,
  KEY_B,
  PROFILE_URL,
  SKIP_NOTE,
  containers,
  deepFreeze,
  hasEmpty,
  hl7,
  profile,
  refToken,
  syntheaResources,
} from './fixtures.js';

const ctxA = { pseudonymize: pseudonymizer(KEY_A) };
const ctxB = { pseudonymize: pseudonymizer(KEY_B) };
const META = { profile: [PROFILE_URL] };
/** The id a profile that does not deliver it gives: the subscriber's keyed pseudonym of the input id. */
const pid = (r: Json): string => ctxA.pseudonymize(String(r['id']));
const DAR = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }] };
const RACE = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race';
const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';

function run(p: Parameters<typeof compileProfile>[0], res: Json, ctx = ctxA): Json {
  return compileProfile(p)(deepFreeze(structuredClone(res)), ctx);
}

function catchError(f: () => unknown): BrokerError {
  try {
    f();
  } catch (e) {
    if (e instanceof BrokerError) return e;
    throw e;
  }
  throw new Error('expected a BrokerError');
}

function syntheaPatient(): Json {
  const p = syntheaResources().find((r) => r['resourceType'] === 'Patient');
  if (p === undefined) throw new Error('no synthea Patient');
  return p;
}

describe.skipIf(!HAVE_EXAMPLES)(`compileProfile on HL7 and Synthea examples${SKIP_NOTE}`, () => {
  const patient = HAVE_EXAMPLES ? hl7('patient-example.json') : {};

  describe('typical profiles', () => {
    it('notification: exactly name + telecom (and resourceType, meta.profile)', () => {
      const out = run(profile('Patient', ['Patient.name', 'Patient.telecom']), patient);
      expect(out).toEqual({
        resourceType: 'Patient',
        id: pid(patient),
        meta: META,
        name: patient['name'],
        telecom: patient['telecom'],
      });
    });

    it('every copy has an id: the input id where the profile delivers it, else the subscriber keyed pseudonym of it', () => {
      const contact = profile('Patient', ['Patient.name']);
      const a = run(contact, patient)['id'];
      expect(a).toBe(ctxA.pseudonymize('example'));
      expect(a).not.toBe('example');
      expect(run(contact, patient, ctxB)['id']).not.toBe(a);
      // The same token the subscriber gets for references to that Patient, so its copies link.
      expect(ctxA.pseudonymize('Patient/example')).toBe(`Patient/${String(a)}`);
      expect(run(profile('Patient', ['Patient.id', 'Patient.name']), patient)['id']).toBe('example');
      expect(
        run(profile('Patient', ['Patient.id'], { transforms: { 'Patient.id': 'pseudonym' } }), patient)['id'],
      ).toBe(a);
      // A profile that withholds the resource whole (an unreadable rule) still names it by the pseudonym.
      expect(run(profile('Patient', ['Patient.gender'], { transforms: { 'Patient..x': 'drop' } }), patient)['id']).toBe(
        a,
      );
      const { id: _id, ...noId } = patient;
      expect(run(contact, noId)).not.toHaveProperty('id');
    });

    it('billing: identifier, name, address, birthDate (with its primitive extension)', () => {
      const out = run(
        profile('Patient', ['Patient.identifier', 'Patient.name', 'Patient.address', 'Patient.birthDate']),
        patient,
      );
      expect(out).toEqual({
        resourceType: 'Patient',
        id: pid(patient),
        meta: META,
        identifier: patient['identifier'],
        name: patient['name'],
        address: patient['address'],
        birthDate: '1974-12-25',
        _birthDate: patient['_birthDate'],
      });
    });

    it('de-identified Observation: subject pseudonymised, effective → year, no performer', () => {
      const obs = hl7('observation-example-f001-glucose.json');
      const p = profile(
        'Observation',
        [
          'Observation.status',
          'Observation.code',
          'Observation.subject',
          'Observation.effective[x]',
          'Observation.value[x]',
        ],
        {
          deidentified: true,
          transforms: { 'Observation.subject': 'pseudonym', 'Observation.effective[x]': 'year' },
        },
      );
      expect(run(p, obs)).toEqual({
        resourceType: 'Observation',
        id: pid(obs),
        meta: META,
        status: 'final',
        // De-identified: Coding.display and Quantity.unit are free text (string), withheld unless named exactly.
        code: { coding: [{ system: 'http://loinc.org', code: '15074-8' }] },
        subject: { reference: `Patient/${refToken(KEY_A, 'f001')}` },
        effectivePeriod: { start: '2013' },
        valueQuantity: { value: 6.3, system: 'http://unitsofmeasure.org', code: 'mmol/L' },
      });
      const named = profile(
        'Observation',
        ['Observation.code', 'Observation.code.coding.display', 'Observation.valueQuantity.unit'],
        { deidentified: true },
      );
      expect(run(named, obs)).toEqual({
        resourceType: 'Observation',
        id: pid(obs),
        meta: META,
        code: { coding: [{ system: 'http://loinc.org', code: '15074-8', display: 'Glucose [Moles/volume] in Blood' }] },
        valueQuantity: { unit: 'mmol/l' },
      });
      const dt = run(p, hl7('observation-example-bloodgroup.json'));
      expect(dt['effectiveDateTime']).toBe('2018');
      expect(dt['subject']).toEqual({ reference: `Patient/${refToken(KEY_A, 'infant')}` });
    });

    it('full profile: the resource unchanged except meta.profile', () => {
      expect(run(profile('Patient', ['Patient']), patient)).toEqual({ ...patient, meta: META });
      const obs = hl7('observation-example-bloodpressure.json');
      expect(run(profile('Observation', ['Observation']), obs)).toEqual({
        ...obs,
        meta: { ...(obs['meta'] as Json), profile: [PROFILE_URL] },
      });
    });

    it('full profile with its contained types: json-edge-cases unchanged except meta.profile', () => {
      const edge = hl7('json-edge-cases.json');
      const p = profile('Patient', ['Patient'], { contained: { Binary: ['Binary'], Organization: ['Organization'] } });
      expect(run(p, edge)).toEqual({ ...edge, meta: META });
    });
  });

  describe('element rules', () => {
    it('choice elements: value[x] allows every type, valueQuantity only that one', () => {
      const glucose = hl7('observation-example-f001-glucose.json');
      const group = hl7('observation-example-bloodgroup.json');
      const any = profile('Observation', ['Observation.value[x]']);
      const qty = profile('Observation', ['Observation.valueQuantity']);
      expect(run(any, glucose)).toEqual({
        resourceType: 'Observation',
        id: pid(glucose),
        meta: META,
        valueQuantity: glucose['valueQuantity'],
      });
      expect(run(any, group)).toEqual({
        resourceType: 'Observation',
        id: pid(group),
        meta: META,
        valueCodeableConcept: group['valueCodeableConcept'],
      });
      expect(run(qty, glucose)).toEqual({
        resourceType: 'Observation',
        id: pid(glucose),
        meta: META,
        valueQuantity: glucose['valueQuantity'],
      });
      expect(run(qty, group)).toEqual({ resourceType: 'Observation', id: pid(group), meta: META });
      expect(run(profile('Observation', ['Observation.value']), group)).toEqual({
        resourceType: 'Observation',
        id: pid(group),
        meta: META,
        valueCodeableConcept: group['valueCodeableConcept'],
      });
      expect(run(profile('Observation', ['Observation.valueQuantity.unit']), glucose)).toEqual({
        resourceType: 'Observation',
        id: pid(glucose),
        meta: META,
        valueQuantity: { unit: 'mmol/l' },
      });
      expect(run(profile('Patient', ['Patient.deceased[x]']), patient)).toEqual({
        resourceType: 'Patient',
        id: pid(patient),
        meta: META,
        deceasedBoolean: false,
      });
      expect(run(profile('Patient', ['Patient.deceasedDateTime']), patient)).toEqual({
        resourceType: 'Patient',
        id: pid(patient),
        meta: META,
      });
    });

    it('repeating elements: the rule applies to every item; items left empty go, order kept', () => {
      const fam = run(profile('Patient', ['Patient.name.family']), patient);
      expect(fam['name']).toEqual([{ family: 'Chalmers' }, { family: 'Windsor' }]);
      const tel = run(profile('Patient', ['Patient.telecom.value']), patient);
      expect(tel['telecom']).toEqual([
        { value: '(03) 5555 6473' },
        { value: '(03) 3410 5613' },
        { value: '(03) 5555 8834' },
      ]);
      const bp = hl7('observation-example-bloodpressure.json');
      const comp = run(profile('Observation', ['Observation.component.valueQuantity.value']), bp);
      expect(comp['component']).toEqual([{ valueQuantity: { value: 107 } }, { valueQuantity: { value: 60 } }]);
    });

    it('drop removes an element under an allowed ancestor', () => {
      const out = run(profile('Patient', ['Patient.name'], { transforms: { 'Patient.name.period': 'drop' } }), patient);
      const names = patient['name'] as Json[];
      expect(out['name']).toEqual([
        names[0],
        names[1],
        { use: 'maiden', family: 'Windsor', given: ['Peter', 'James'] },
      ]);
    });

    it('extensions: all at a level, or only those with a given url (us-core-race)', () => {
      const p = syntheaPatient();
      const exts = p['extension'] as Json[];
      const race = exts.find((e) => e['url'] === RACE);
      expect(race).toBeDefined();
      expect(run(profile('Patient', [`Patient.extension(${RACE})`]), p)).toEqual({
        resourceType: 'Patient',
        id: pid(p),
        meta: META,
        extension: [race],
      });
      expect(run(profile('Patient', ['Patient.extension']), p)['extension']).toEqual(exts);
      const omb = run(profile('Patient', [`Patient.extension(${RACE}).extension(ombCategory)`]), p);
      expect(omb['extension']).toEqual([{ url: RACE, extension: [(race?.['extension'] as Json[])[0]] }]);
      const city = run(profile('Patient', [`Patient.extension(${BIRTH_PLACE}).valueAddress.city`]), p);
      const bp = exts.find((e) => e['url'] === BIRTH_PLACE)?.['valueAddress'] as Json;
      expect(city['extension']).toEqual([{ url: BIRTH_PLACE, valueAddress: { city: bp['city'] } }]);
      expect(run(profile('Patient', ['Patient.extension(http://example.org/none)']), p)).toEqual({
        resourceType: 'Patient',
        id: pid(p),
        meta: META,
      });
    });

    it('primitive extensions follow their primitive, and are dropped under a transform', () => {
      const kept = run(profile('Patient', ['Patient.birthDate']), patient);
      expect(kept).toEqual({
        resourceType: 'Patient',
        id: pid(patient),
        meta: META,
        birthDate: '1974-12-25',
        _birthDate: patient['_birthDate'],
      });
      const yr = run(
        profile('Patient', ['Patient.birthDate'], { transforms: { 'Patient.birthDate': 'year' } }),
        patient,
      );
      expect(yr).toEqual({ resourceType: 'Patient', id: pid(patient), meta: META, birthDate: '1974' });
      const fam = run(profile('Patient', ['Patient.contact.name.family']), patient);
      expect(fam['contact']).toEqual([
        { name: { family: 'du Marché', _family: ((patient['contact'] as Json[])[0]?.['name'] as Json)['_family'] } },
      ]);
    });

    it('_given arrays with nulls stay aligned with given (json-edge-cases)', () => {
      const edge = hl7('json-edge-cases.json');
      delete edge['modifierExtension'];
      const name = (edge['contact'] as Json[])[0]?.['name'] as Json;
      const given = run(profile('Patient', ['Patient.contact.name.given']), edge);
      expect(given['contact']).toEqual([{ name: { given: ['Bénédicte', 'Denise', 'Marie'], _given: name['_given'] } }]);
      const extOnly = run(profile('Patient', ['Patient.contact.name.given.extension']), edge);
      expect(extOnly['contact']).toEqual([
        {
          name: {
            _given: [
              null,
              { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/qualifier', valueCode: 'MID' }] },
              null,
            ],
          },
        },
      ]);
      const pseudo = run(
        profile('Patient', ['Patient.contact.name.given'], {
          transforms: { 'Patient.contact.name.given': 'pseudonym' },
        }),
        edge,
      );
      expect(pseudo['contact']).toEqual([
        { name: { given: [refToken(KEY_A, 'Bénédicte'), refToken(KEY_A, 'Denise'), refToken(KEY_A, 'Marie')] } },
      ]);
      const active = run(profile('Patient', ['Patient.active']), edge);
      expect(active).toEqual({ resourceType: 'Patient', meta: META, _active: edge['_active'] });
    });

    it('pseudonym on an Identifier: value tokenised, only system and type kept', () => {
      const out = run(
        profile('Patient', ['Patient.identifier'], { transforms: { 'Patient.identifier': 'pseudonym' } }),
        patient,
      );
      const { system, type } = (patient['identifier'] as Json[])[0] as Json;
      // Only system, type and the tokenised value: use, period and assigner can narrow who it is.
      expect(out['identifier']).toEqual([{ system, type, value: refToken(KEY_A, '12345') }]);
    });

    it('zip3 on postal codes, restricted prefixes → 000, non-US codes withheld', () => {
      const p = structuredClone(patient);
      p['address'] = [
        { city: 'A', postalCode: '02139' },
        { city: 'B', postalCode: '03601-4410' },
        { city: 'C', postalCode: '3999' },
      ];
      const out = run(
        profile('Patient', ['Patient.address'], { transforms: { 'Patient.address.postalCode': 'zip3' } }),
        p,
      );
      expect(out['address']).toEqual([
        { city: 'A', postalCode: '021' },
        { city: 'B', postalCode: '000' },
        { city: 'C' },
      ]);
    });

    it('a transform the type cannot take, or a path that does not resolve, withholds (fail safe)', () => {
      expect(
        run(profile('Patient', ['Patient.name'], { transforms: { 'Patient.name.family': 'year' } }), patient)['name'],
      ).toEqual([
        { use: 'official', given: ['Peter', 'James'] },
        { use: 'usual', given: ['Jim'] },
        { use: 'maiden', given: ['Peter', 'James'], period: { end: '2002' } },
      ]);
      expect(
        run(profile('Patient', ['Patient.name'], { transforms: { 'Patient.name.nonsense': 'year' } }), patient),
      ).toEqual({ resourceType: 'Patient', id: pid(patient), meta: META });
      expect(run(profile('Patient', ['Patient.nonsense', 'Observation.status', 'Patient.name[0]']), patient)).toEqual({
        resourceType: 'Patient',
        id: pid(patient),
        meta: META,
      });
      const bad = run(profile('Patient', ['Patient.gender'], { transforms: { 'Patient..x': 'drop' } }), patient);
      expect(bad).toEqual({ resourceType: 'Patient', id: pid(patient), meta: META });
    });

    it('year withholds an instant (no valid instant has only a year)', () => {
      const glucose = hl7('observation-example-f001-glucose.json');
      const out = run(
        profile('Observation', ['Observation.issued', 'Observation.status'], {
          transforms: { 'Observation.issued': 'year' },
        }),
        glucose,
      );
      expect(out).toEqual({ resourceType: 'Observation', id: pid(glucose), meta: META, status: 'final' });
    });

    it('transforms never allow: a transformed path outside the allow-list stays withheld', () => {
      expect(
        run(profile('Patient', ['Patient.gender'], { transforms: { 'Patient.birthDate': 'year' } }), patient),
      ).toEqual({ resourceType: 'Patient', id: pid(patient), meta: META, gender: 'male' });
    });
  });

  describe('resource rules', () => {
    it('meta.security always passes; meta.profile is replaced; other meta children only if allowed', () => {
      const p = structuredClone(patient);
      const security = [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }];
      p['meta'] = {
        versionId: '3',
        lastUpdated: '2024-01-02T03:04:05Z',
        profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
        security,
        tag: [{ code: 't' }],
      };
      expect(run(profile('Patient', ['Patient.gender']), p)).toEqual({
        resourceType: 'Patient',
        id: pid(p),
        meta: { security, profile: [PROFILE_URL] },
        gender: 'male',
      });
      expect(run(profile('Patient', ['Patient.meta.lastUpdated']), p)).toEqual({
        resourceType: 'Patient',
        id: pid(p),
        meta: { lastUpdated: '2024-01-02T03:04:05Z', security, profile: [PROFILE_URL] },
      });
      expect(run(profile('Patient', ['Patient.id']), p)).toEqual({
        resourceType: 'Patient',
        id: 'example',
        meta: { security, profile: [PROFILE_URL] },
      });
    });

    it('contained: kept only when allowed and listed; #home stays resolvable', () => {
      const enc = hl7('encounter-example-home.json');
      const loc = (enc['location'] as Json[])[0] as Json;
      const withLoc = run(
        profile('Encounter', ['Encounter.location', 'Encounter.contained'], {
          contained: { Location: ['Location.description'] },
        }),
        enc,
      );
      expect(withLoc).toEqual({
        resourceType: 'Encounter',
        id: pid(enc),
        meta: META,
        contained: [{ resourceType: 'Location', id: 'home', description: "Client's home" }],
        location: [loc],
      });
    });

    it('contained removed: the local reference is removed, display kept only if allowed', () => {
      const enc = hl7('encounter-example-home.json');
      const loc = (enc['location'] as Json[])[0] as Json;
      const notListed = run(profile('Encounter', ['Encounter.location', 'Encounter.contained']), enc);
      expect(notListed).toEqual({
        resourceType: 'Encounter',
        id: pid(enc),
        meta: META,
        location: [{ ...loc, location: { display: "Client's home" } }],
      });
      const notAllowed = run(
        profile('Encounter', ['Encounter.location'], { contained: { Location: ['Location'] } }),
        enc,
      );
      expect(notAllowed).toEqual(notListed);
      const refOnly = run(profile('Encounter', ['Encounter.status', 'Encounter.location.location.reference']), enc);
      expect(refOnly).toEqual({ resourceType: 'Encounter', id: pid(enc), meta: META, status: 'finished' });
    });

    it('contained resources are projected by their own rules (apgar: contained Patient, year drops _birthDate)', () => {
      const apgar = hl7('observation-example-1minute-apgar-score.json');
      const p = profile('Observation', ['Observation.subject', 'Observation.contained'], {
        contained: { Patient: ['Patient.gender', 'Patient.birthDate'] },
        transforms: { 'Patient.birthDate': 'year' },
      });
      expect(run(p, apgar)).toEqual({
        resourceType: 'Observation',
        id: pid(apgar),
        meta: META,
        contained: [{ resourceType: 'Patient', id: 'newborn', gender: 'male', birthDate: '2016' }],
        subject: { reference: '#newborn' },
      });
      const empty = run(
        profile('Observation', ['Observation.subject', 'Observation.contained'], {
          contained: { Patient: ['Patient.photo'] },
        }),
        apgar,
      );
      expect(empty).toEqual({ resourceType: 'Observation', id: pid(apgar), meta: META });
    });

    it('a contained resource carrying a withheld modifierExtension is removed, and so is the reference to it', () => {
      const apgar = hl7('observation-example-1minute-apgar-score.json');
      const newborn = (apgar['contained'] as Json[])[0] as Json;
      newborn['modifierExtension'] = [
        { url: 'http://example.org/fhir/StructureDefinition/synthetic-modifier', valueBoolean: true },
      ];
      const p = profile('Observation', ['Observation.status', 'Observation.subject', 'Observation.contained'], {
        contained: { Patient: ['Patient.gender'] },
      });
      expect(run(p, apgar)).toEqual({ resourceType: 'Observation', id: pid(apgar), meta: META, status: 'final' });
      const withMod = profile('Observation', ['Observation.status', 'Observation.subject', 'Observation.contained'], {
        contained: { Patient: ['Patient.gender', 'Patient.modifierExtension'] },
      });
      expect(run(withMod, apgar)['contained']).toEqual([
        { resourceType: 'Patient', id: 'newborn', modifierExtension: newborn['modifierExtension'], gender: 'male' },
      ]);
    });

    it('json-edge-cases: a withheld modifierExtension withholds the resource (E_MODIFIER_WITHHELD)', () => {
      const edge = hl7('json-edge-cases.json');
      for (const allow of [
        ['Patient.name'],
        ['Patient.name', 'Patient.modifierExtension(http://example.org/fhir/StructureDefinition/pi)'],
      ]) {
        const err = catchError(() => run(profile('Patient', allow), edge));
        expect(err.code).toBe('E_MODIFIER_WITHHELD');
        expect(err.path).toBe('Patient.modifierExtension');
        expect(err.message).toContain('Patient.modifierExtension');
        expect(err.message).not.toMatch(/3\.14|Chalmers/);
      }
      const ok = run(profile('Patient', ['Patient.name', 'Patient.modifierExtension']), edge);
      expect(ok).toEqual({
        resourceType: 'Patient',
        meta: META,
        name: edge['name'],
        modifierExtension: edge['modifierExtension'],
      });
    });

    it('implicitRules withheld withholds the resource too', () => {
      const p = { ...structuredClone(patient), implicitRules: 'http://example.org/rules' };
      expect(catchError(() => run(profile('Patient', ['Patient.name']), p)).code).toBe('E_MODIFIER_WITHHELD');
      expect(run(profile('Patient', ['Patient.gender', 'Patient.implicitRules']), p)).toEqual({
        resourceType: 'Patient',
        id: pid(p),
        meta: META,
        implicitRules: 'http://example.org/rules',
        gender: 'male',
      });
    });

    it('a nested element carrying a withheld modifierExtension is withheld whole; others stay', () => {
      const p = structuredClone(patient);
      const contacts = p['contact'] as Json[];
      const second = {
        name: { family: 'Synthetic' },
        modifierExtension: [{ url: 'http://example.org/fhir/StructureDefinition/not-really', valueBoolean: true }],
      };
      contacts.push(second);
      const out = run(profile('Patient', ['Patient.contact.name']), p);
      expect(out['contact']).toEqual([{ name: (contacts[0] as Json)['name'] }]);
      const all = run(profile('Patient', ['Patient.contact']), p);
      expect((all['contact'] as Json[])[1]).toEqual(second);
      const dropped = run(
        profile('Patient', ['Patient.contact'], { transforms: { 'Patient.contact.modifierExtension': 'drop' } }),
        p,
      );
      expect(dropped['contact']).toEqual([contacts[0]]);
    });

    it('markMasked: each withheld top-level element carries data-absent-reason masked', () => {
      const out = run(profile('Patient', ['Patient.name'], { markMasked: true }), patient);
      expect(out).toEqual({
        resourceType: 'Patient',
        id: pid(patient),
        meta: META,
        name: patient['name'],
        identifier: [DAR],
        _active: DAR,
        telecom: [DAR],
        _gender: DAR,
        _birthDate: DAR,
        _deceasedBoolean: DAR,
        address: [DAR],
        contact: [DAR],
        managingOrganization: DAR,
      });
      const edge = hl7('json-edge-cases.json');
      const e = run(profile('Patient', ['Patient.modifierExtension', 'Patient.gender'], { markMasked: true }), edge);
      expect(Object.keys(e).sort()).toEqual(
        [
          'resourceType',
          'meta',
          'modifierExtension',
          'gender',
          'identifier',
          'managingOrganization',
          '_active',
          'name',
          '_birthDate',
          '_deceasedBoolean',
          'address',
          'maritalStatus',
          '_multipleBirthInteger',
          'contact',
          'generalPractitioner',
          'telecom',
        ].sort(),
      );
      expect(e).not.toHaveProperty('text');
      expect(e).not.toHaveProperty('contained');
      expect(e).not.toHaveProperty('extension');
    });
  });

  describe('purity and pseudonym keys', () => {
    it('does not mutate its input and shares no object with it', () => {
      const edge = hl7('json-edge-cases.json');
      const frozen = deepFreeze(structuredClone(edge));
      const p = profile('Patient', ['Patient'], {
        contained: { Binary: ['Binary'], Organization: ['Organization'] },
        transforms: { 'Patient.identifier': 'pseudonym' },
      });
      const out = compileProfile(p)(frozen, ctxA);
      expect(frozen).toEqual(edge);
      const shared = [...containers(out)].filter((c) => containers(frozen).has(c));
      expect(shared).toEqual([]);
    });

    it('same key, same token; other key, other token', () => {
      const p = profile('Patient', ['Patient.id', 'Patient.identifier.value'], {
        transforms: { 'Patient.id': 'pseudonym', 'Patient.identifier.value': 'pseudonym' },
      });
      const a1 = run(p, patient, ctxA);
      const a2 = run(p, patient, { pseudonymize: pseudonymizer(new Uint8Array(KEY_A)) });
      const b = run(p, patient, ctxB);
      expect(a1).toEqual(a2);
      expect(a1['id']).toBe(refToken(KEY_A, 'example'));
      expect(b['id']).toBe(refToken(KEY_B, 'example'));
      expect(a1['identifier']).toEqual([{ value: refToken(KEY_A, '12345') }]);
      expect(b['identifier']).not.toEqual(a1['identifier']);
    });

    it('never emits an empty object or array', () => {
      const edge = hl7('json-edge-cases.json');
      for (const allow of [
        ['Patient.telecom.value'],
        ['Patient.maritalStatus.coding'],
        ['Patient.contact.name.given.extension'],
        ['Patient.name.family', 'Patient.extension.valueReference'],
      ]) {
        const out = run(profile('Patient', [...allow, 'Patient.modifierExtension']), edge);
        expect(out['modifierExtension']).toEqual(edge['modifierExtension']);
        expect(hasEmpty(out)).toBe(false);
        expect(out).not.toHaveProperty('maritalStatus');
      }
    });
  });
});
