// Identifier rules (profile `identifiers:`) in the projector: identifiers are kept by HL7 v2-0203 type or by system,
// a drop matcher overrides any keep, an identifier matching no keep matcher is withheld (default deny), and the rule
// reaches every Identifier the profile delivers at any depth (nested backbone elements, Reference.identifier,
// extensions, contained resources, de-identified profiles). Then the shipped billing profile on a Synthea patient.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IdentifierRuleDef } from '../../src/catalog/types.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import type { Json } from './fixtures.js';
import {
  HAVE_EXAMPLES,
  KEY_A,
  PROFILE_URL,
  SHIPPED,
  SKIP_NOTE,
  deepFreeze,
  profile,
  syntheaBundles,
} from './fixtures.js';

const ctx = { pseudonymize: pseudonymizer(KEY_A) };
const V2 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const typed = (code: string): Json => ({ coding: [{ system: V2, code }] });

const MR_LOCAL = { type: typed('MR'), system: 'urn:example:mrn-a', value: 'MRN-A-0001' };
const MR_OTHER = { type: typed('MR'), system: 'https://mrn.example.org/b', value: 'MRN-B-0002' };
const SSN_TYPED = { type: typed('SS'), system: 'urn:example:national', value: '999-00-1111' };
const SSN_SYSTEM = { system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-00-2222' };
const DL = { type: typed('DL'), system: 'urn:oid:2.16.840.1.113883.4.3.25', value: 'S00000001' };
const UNTYPED = { system: 'urn:example:unknown', value: 'U-0003' };
const KNOWN_SYSTEM = { system: 'urn:oid:2.16.840.1.113883.19.5', value: 'K-0004' };
/** An MR type written with another code system: not a v2-0203 type, so not kept by `type: MR`. */
const MR_WRONG_SYSTEM = { type: { coding: [{ system: 'urn:example:types', code: 'MR' }] }, value: 'W-0005' };

const rule = (keep: IdentifierRuleDef['keep'], drop: IdentifierRuleDef['drop'] = []): IdentifierRuleDef => ({
  keep,
  drop,
});

function patientWith(identifier: Json[]): Json {
  return deepFreeze({ resourceType: 'Patient', id: 'id-test', identifier, gender: 'other' });
}

function project(
  identifiers: IdentifierRuleDef,
  resource: Json,
  allow = [`${String(resource['resourceType'])}`],
): Json {
  return compileProfile(profile(String(resource['resourceType']), allow, { identifiers }))(resource, ctx);
}

describe('identifiers: keep and drop on Patient.identifier', () => {
  const all = [MR_LOCAL, SSN_TYPED, MR_OTHER, DL, UNTYPED, SSN_SYSTEM, KNOWN_SYSTEM, MR_WRONG_SYSTEM];

  it('keep by type: every MR whatever its system, in input order; nothing else', () => {
    const out = project(rule([{ type: 'MR' }]), patientWith(all));
    expect(out['identifier']).toEqual([MR_LOCAL, MR_OTHER]);
    expect(out['gender']).toBe('other');
  });

  it('keep by system: exact match, typed or not', () => {
    const out = project(
      rule([{ system: 'urn:oid:2.16.840.1.113883.19.5' }, { system: 'urn:example:mrn-a' }]),
      patientWith(all),
    );
    expect(out['identifier']).toEqual([MR_LOCAL, KNOWN_SYSTEM]);
  });

  it('type and system in one matcher: both must hold', () => {
    const out = project(rule([{ type: 'MR', system: 'https://mrn.example.org/b' }]), patientWith(all));
    expect(out['identifier']).toEqual([MR_OTHER]);
  });

  it('drop by type overrides keep by system; drop by system overrides keep by type', () => {
    const ssnKeptBySystem = { ...SSN_TYPED, system: 'urn:oid:2.16.840.1.113883.19.5' };
    const out = project(
      rule([{ system: 'urn:oid:2.16.840.1.113883.19.5' }], [{ type: 'SS' }]),
      patientWith([ssnKeptBySystem, KNOWN_SYSTEM]),
    );
    expect(out['identifier']).toEqual([KNOWN_SYSTEM]);
    const mrUnderSsnSystem = { type: typed('MR'), system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-00-3333' };
    const out2 = project(
      rule([{ type: 'MR' }], [{ system: 'http://hl7.org/fhir/sid/us-ssn' }]),
      patientWith([mrUnderSsnSystem, MR_LOCAL]),
    );
    expect(out2['identifier']).toEqual([MR_LOCAL]);
  });

  it('default deny: no type and an unknown system, a type of another code system, or no keep match → withheld', () => {
    const out = project(
      rule([{ type: 'MR' }, { system: 'urn:oid:2.16.840.1.113883.19.5' }]),
      patientWith([UNTYPED, MR_WRONG_SYSTEM, DL]),
    );
    expect(out).toEqual({ resourceType: 'Patient', id: 'id-test', meta: { profile: [PROFILE_URL] }, gender: 'other' });
    expect(JSON.stringify(out)).not.toContain('U-0003');
  });

  it('malformed identifiers and codings are withheld, never passed', () => {
    const weird = [
      'MRN-as-a-string',
      { type: { coding: 'MR' }, value: 'X-1' },
      { type: { coding: [null, { system: V2, code: 7 }] }, value: 'X-2' },
      { type: typed('MR'), value: 'X-3' },
    ];
    const out = project(rule([{ type: 'MR' }]), patientWith(weird as Json[]));
    expect(out['identifier']).toEqual([{ type: typed('MR'), value: 'X-3' }]);
  });

  it('with an allowed descendant only, the rule is still judged on the input identifier', () => {
    const out = project(rule([{ type: 'MR' }]), patientWith([SSN_TYPED, MR_LOCAL]), ['Patient.identifier.value']);
    expect(out['identifier']).toEqual([{ value: 'MRN-A-0001' }]);
  });

  it('with a where filter on the same element, both must hold', () => {
    const p = profile('Patient', ['Patient.identifier'], {
      identifiers: rule([{ type: 'MR' }]),
      where: { 'Patient.identifier': { system: ['https://mrn.example.org/b', 'urn:example:unknown'] } },
    });
    const out = compileProfile(p)(patientWith([MR_LOCAL, MR_OTHER, UNTYPED]), ctx);
    expect(out['identifier']).toEqual([MR_OTHER]);
  });

  it('markMasked marks the element when every identifier is withheld', () => {
    const p = profile('Patient', ['Patient.identifier', 'Patient.gender'], {
      identifiers: rule([{ type: 'MR' }]),
      markMasked: true,
    });
    const out = compileProfile(p)(patientWith([SSN_TYPED]), ctx);
    expect(out['identifier']).toEqual([
      { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }] },
    ]);
  });
});

describe('identifiers: at any depth', () => {
  const keepMr = rule([{ type: 'MR' }], [{ type: 'SS' }]);

  it('Coverage.identifier, Reference.identifier (beneficiary, payor) and Identifier.assigner.identifier', () => {
    const coverage = deepFreeze({
      resourceType: 'Coverage',
      status: 'active',
      identifier: [SSN_TYPED, { ...MR_LOCAL, assigner: { identifier: SSN_SYSTEM, display: 'Clinic' } }],
      beneficiary: { reference: 'Patient/p1', identifier: SSN_TYPED },
      payor: [{ identifier: MR_OTHER }, { identifier: DL, display: 'Payer' }],
    });
    const out = project(keepMr, coverage);
    expect(out['identifier']).toEqual([{ ...MR_LOCAL, assigner: { display: 'Clinic' } }]);
    expect(out['beneficiary']).toEqual({ reference: 'Patient/p1' });
    expect(out['payor']).toEqual([{ identifier: MR_OTHER }, { display: 'Payer' }]);
    expect(out['status']).toBe('active');
  });

  it('Encounter.identifier and backbone elements (participant.individual, hospitalization.origin) under an allowed ancestor', () => {
    const encounter = deepFreeze({
      resourceType: 'Encounter',
      status: 'finished',
      class: { code: 'AMB' },
      identifier: [UNTYPED, MR_LOCAL],
      participant: [{ individual: { identifier: SSN_SYSTEM, display: 'Dr X' } }],
      hospitalization: { origin: { identifier: MR_OTHER } },
    });
    const out = project(keepMr, encounter, [
      'Encounter.identifier',
      'Encounter.participant',
      'Encounter.hospitalization',
    ]);
    expect(out['identifier']).toEqual([MR_LOCAL]);
    expect(out['participant']).toEqual([{ individual: { display: 'Dr X' } }]);
    expect(out['hospitalization']).toEqual({ origin: { identifier: MR_OTHER } });
    expect(out['status']).toBeUndefined();
  });

  it('valueIdentifier in an extension, and contained resources projected with the same rule', () => {
    const patient = deepFreeze({
      resourceType: 'Patient',
      extension: [
        { url: 'urn:example:ext', valueIdentifier: SSN_TYPED },
        { url: 'urn:example:ext2', valueIdentifier: MR_OTHER },
      ],
      contained: [{ resourceType: 'Organization', id: 'org', identifier: [SSN_SYSTEM, MR_LOCAL], name: 'Org' }],
      managingOrganization: { reference: '#org' },
    });
    const p = profile('Patient', ['Patient'], { identifiers: keepMr, contained: { Organization: ['Organization'] } });
    const out = compileProfile(p)(patient, ctx);
    expect(out['extension']).toEqual([
      { url: 'urn:example:ext' },
      { url: 'urn:example:ext2', valueIdentifier: MR_OTHER },
    ]);
    expect(out['contained']).toEqual([
      { resourceType: 'Organization', id: 'org', identifier: [MR_LOCAL], name: 'Org' },
    ]);
  });

  it('resources inside an element (Bundle.entry.resource) are judged by their own type; an unknown type is withheld', () => {
    const bundle = deepFreeze({
      resourceType: 'Bundle',
      type: 'collection',
      identifier: SSN_SYSTEM,
      entry: [
        { fullUrl: 'urn:uuid:1', resource: { resourceType: 'Patient', identifier: [SSN_TYPED, MR_LOCAL] } },
        { fullUrl: 'urn:uuid:2', resource: { resourceType: 'Coverage', beneficiary: { identifier: SSN_TYPED } } },
        { fullUrl: 'urn:uuid:3', resource: { resourceType: 'NotAType', identifier: [SSN_TYPED] } },
      ],
    });
    const out = project(keepMr, bundle);
    expect(out['identifier']).toBeUndefined();
    expect(out['entry']).toEqual([
      { fullUrl: 'urn:uuid:1', resource: { resourceType: 'Patient', identifier: [MR_LOCAL] } },
      { fullUrl: 'urn:uuid:2', resource: { resourceType: 'Coverage' } },
      { fullUrl: 'urn:uuid:3' },
    ]);
  });

  it('a de-identified profile applies the rule before pseudonym', () => {
    const p = profile('Patient', ['Patient.identifier'], {
      deidentified: true,
      transforms: { 'Patient.identifier': 'pseudonym' },
      identifiers: keepMr,
    });
    const out = compileProfile(p)(patientWith([SSN_TYPED, MR_LOCAL]), ctx);
    const ids = out['identifier'] as Json[];
    expect(ids).toHaveLength(1);
    expect(ids[0]?.['system']).toBe('urn:example:mrn-a');
    expect(ids[0]?.['value']).toBe(ctx.pseudonymize('MRN-A-0001'));
    expect(JSON.stringify(out)).not.toContain('999-00-1111');
  });

  it('without an identifiers rule, identifiers pass as allowed (unchanged behaviour)', () => {
    const out = compileProfile(profile('Patient', ['Patient']))(patientWith([SSN_TYPED, UNTYPED]), ctx);
    expect(out['identifier']).toEqual([SSN_TYPED, UNTYPED]);
  });
});

describe('identifiers: property (fast-check) against an independent oracle', () => {
  const CODES = ['MR', 'SS', 'DL', 'PPN', 'MB'];
  const SYSTEMS = ['urn:a', 'urn:b', 'http://hl7.org/fhir/sid/us-ssn'];
  const coding = fc.record({
    system: fc.constantFrom(V2, 'urn:other-types'),
    code: fc.constantFrom(...CODES, 'mr'),
  });
  const identifier = fc.record(
    {
      type: fc.record({ coding: fc.array(coding, { minLength: 1, maxLength: 3 }) }),
      system: fc.constantFrom(...SYSTEMS),
      value: fc.stringMatching(/^[A-Z0-9-]{1,10}$/),
    },
    { requiredKeys: ['value'] },
  );
  const matcher = fc
    .record({ type: fc.constantFrom(...CODES), system: fc.constantFrom(...SYSTEMS) }, { requiredKeys: [] })
    .filter((m) => m.type !== undefined || m.system !== undefined);
  /** The rule as docs/profiles.md states it, written apart from src/. */
  function oracle(r: IdentifierRuleDef, id: Json): boolean {
    const codings = ((id['type'] as Json | undefined)?.['coding'] as Json[] | undefined) ?? [];
    const holds = (m: IdentifierRuleDef['keep'][number]): boolean =>
      (m.type === undefined || codings.some((c) => c['system'] === V2 && c['code'] === m.type)) &&
      (m.system === undefined || id['system'] === m.system);
    return r.keep.some(holds) && !r.drop.some(holds);
  }

  it('the delivered identifiers are exactly the input ones the rule keeps, in order, unchanged', () => {
    fc.assert(
      fc.property(
        fc.array(identifier, { maxLength: 6 }),
        fc.array(matcher, { minLength: 1, maxLength: 3 }),
        fc.array(matcher, { maxLength: 2 }),
        (ids, keep, drop) => {
          const r = rule(keep as IdentifierRuleDef['keep'], drop as IdentifierRuleDef['drop']);
          const out = project(r, patientWith(structuredClone(ids) as Json[]));
          const expected = (ids as Json[]).filter((i) => oracle(r, i));
          expect(out['identifier']).toEqual(expected.length === 0 ? undefined : expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe.skipIf(!HAVE_EXAMPLES)(`identifiers: the shipped billing profile on Synthea patients${SKIP_NOTE}`, () => {
  const catalog = loadCatalog(SHIPPED);
  const billing = catalog.profiles.get('patient-billing');

  it('keeps the MR (whatever its system) and never the SSN, driver licence or passport', () => {
    if (billing === undefined) throw new Error('patient-billing is not in the shipped catalog');
    const project = compileProfile(billing);
    let patients = 0;
    let dlOrPassport = 0;
    for (const { file, bundle } of syntheaBundles()) {
      for (const e of bundle['entry'] as { resource: Json }[]) {
        if (e.resource['resourceType'] !== 'Patient') continue;
        patients++;
        const input = structuredClone(e.resource);
        const ids = input['identifier'] as Json[];
        const codeOf = (i: Json): unknown =>
          ((i['type'] as Json | undefined)?.['coding'] as Json[] | undefined)?.[0]?.['code'];
        const codes = ids.map(codeOf);
        expect(codes.slice(0, 3), file).toEqual([undefined, 'MR', 'SS']);
        dlOrPassport += codes.filter((c) => c === 'DL' || c === 'PPN').length;
        // The same MR under a system the profile does not list is still kept.
        const mr = ids[1] as Json;
        input['identifier'] = [...ids, { ...mr, system: 'urn:example:another-mrn-system' }];
        const out = project(deepFreeze(input), ctx);
        expect(out['identifier'], file).toEqual([mr, { ...mr, system: 'urn:example:another-mrn-system' }]);
        const text = JSON.stringify(out);
        for (const i of ids.slice(2)) expect(text, file).not.toContain(String(i['value']));
        expect(out['name'], file).toEqual(input['name']);
      }
    }
    expect(patients).toBe(5);
    expect(dlOrPassport).toBeGreaterThan(0);
  });
});
