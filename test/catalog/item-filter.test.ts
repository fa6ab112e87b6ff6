// Profile value filters (`where`: keep the items of a repeating element whose discriminator child has one of the
// listed values; FHIR slicing with a `value` discriminator) at load time: the accepted shape, the compiled frozen
// ProfileDef, every rejected form with its file, YAML path, line and message, and the catalog hash.
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import type { CatalogIssue } from '../../src/catalog/issues.js';
import { catalogFiles, profile } from './fixtures.js';

const FILE = 'fhir-profiles/patient-all.yaml';

/** The base catalog with patient-all replaced by this body (allow/where lines). */
function withPatient(body: string): ReturnType<typeof compileCatalog> {
  return compileCatalog(catalogFiles({ [FILE]: profile('patient-all', 'Patient', body) }));
}

function issuesOf(body: string): readonly CatalogIssue[] {
  const r = withPatient(body);
  expect(r.catalog).toBeUndefined();
  return r.issues;
}

/** The only issue, as [path, message, line]. */
function only(body: string): [string, string, number | undefined] {
  const issues = issuesOf(body);
  expect(issues).toHaveLength(1);
  const i = issues[0] as CatalogIssue;
  expect(i.file).toBe(FILE);
  return [i.path, i.message, i.line];
}

describe('where: accepted filters', () => {
  it('compiles into a frozen ProfileDef.where; no where is an empty map', () => {
    const r = withPatient(
      'allow: [Patient.name, Patient.telecom, Patient.identifier]\nwhere:\n  Patient.telecom: { system: [phone, email] }\n  Patient.identifier: { system: [urn:oid:2.16.840.1.113883.19.5] }\n',
    );
    expect(r.issues).toEqual([]);
    const where = r.catalog?.profiles.get('patient-all')?.where;
    expect(where).toEqual({
      'Patient.telecom': { system: ['phone', 'email'] },
      'Patient.identifier': { system: ['urn:oid:2.16.840.1.113883.19.5'] },
    });
    expect(Object.isFrozen(where)).toBe(true);
    expect(Object.isFrozen(where?.['Patient.telecom'])).toBe(true);
    expect(Object.isFrozen(where?.['Patient.telecom']?.['system'])).toBe(true);
    expect(compileCatalog(catalogFiles()).catalog?.profiles.get('obs-deid')?.where).toEqual({});
  });

  it('several discriminators, a filter around an allowed descendant, under an allowed ancestor, nested, and on a contained type', () => {
    expect(
      withPatient(
        'allow: [Patient.telecom.value]\nwhere:\n  Patient.telecom: { system: [phone], use: [home, mobile] }\n',
      ).issues,
    ).toEqual([]);
    expect(
      withPatient(
        'allow: [Patient]\nwhere:\n  Patient.contact.telecom: { system: [phone] }\n  Patient.address: { use: [billing] }\n',
      ).issues,
    ).toEqual([]);
    const obs = profile(
      'obs-contained',
      'Observation',
      'allow: [Observation.code, Observation.contained]\ncontained:\n  Patient: [Patient.telecom]\nwhere:\n  Patient.telecom: { system: [email] }\n  Observation.component: { id: [c1] }\n',
    );
    // component is not allowed: only that filter is reported.
    const r = compileCatalog(catalogFiles({ 'fhir-profiles/obs-contained.yaml': obs }));
    expect(r.issues.map((i) => [i.path, i.message])).toEqual([
      [
        'where["Observation.component"]',
        "'Observation.component' is not inside any allowed path: the filter would never apply",
      ],
    ]);
  });
});

describe('where: rejected filters name the file, the path inside it, the line and what was expected', () => {
  it('the element must resolve in FHIR R4 and start with the profile type', () => {
    expect(only('allow: [Patient.telecom]\nwhere:\n  Patient.telecoms: { system: [phone] }\n')).toEqual([
      'where["Patient.telecoms"]',
      "'Patient.telecoms' is not a FHIR R4 element path: step 2 'telecoms': Patient has no element 'telecoms' (did you mean 'telecom'?)",
      6,
    ]);
    expect(only('allow: [Patient.telecom]\nwhere:\n  Observation.component: { id: [x] }\n')).toEqual([
      'where["Observation.component"]',
      "'Observation.component' must start with Patient",
      6,
    ]);
  });

  it('the element must lie inside, at or around an allowed path', () => {
    expect(only('allow: [Patient.name]\nwhere:\n  Patient.telecom: { system: [phone] }\n')).toEqual([
      'where["Patient.telecom"]',
      "'Patient.telecom' is not inside any allowed path: the filter would never apply",
      6,
    ]);
  });

  it('the element must repeat and hold items of one complex type', () => {
    const cases: [string, string][] = [
      ['Patient', 'a value filter needs a repeating element, not the whole resource'],
      [
        'Patient.maritalStatus',
        'Patient.maritalStatus does not repeat (max 1): a value filter keeps some items of a repeating element',
      ],
      [
        'Patient.name.given',
        'Patient.name.given is a repeating primitive (string): its items have no child element to discriminate on',
      ],
      [
        'Patient.extension',
        'Patient.extension holds extensions: keep some by URL with extension(<url>) in allow instead',
      ],
      [
        'Patient.contained',
        "Patient.contained holds whole resources: list their types in the profile's contained map instead",
      ],
    ];
    for (const [path, message] of cases) {
      // A key without dots is written as a plain step in the issue path.
      expect(only(`allow: [Patient]\nwhere:\n  ${path}: { id: [x] }\n`)).toEqual([
        path === 'Patient' ? 'where.Patient' : `where["${path}"]`,
        message,
        6,
      ]);
    }
  });

  it('the discriminator must be a direct, single, string-valued primitive child of the item type', () => {
    const cases: [string, string, string][] = [
      [
        'Patient.telecom',
        'sytem',
        "'sytem' is not a child element of Patient.telecom (ContactPoint): ContactPoint has no element 'sytem' (did you mean 'system'?)",
      ],
      [
        'Patient.identifier',
        'type.coding.code',
        "'type.coding.code' must be a direct child element of Patient.identifier (Identifier), not a path",
      ],
      [
        'Patient.identifier',
        'type',
        'Patient.identifier.type is CodeableConcept: a discriminator is a primitive matched as an exact string (code, string, uri, url, canonical, id, oid, uuid)',
      ],
      [
        'Patient.telecom',
        'rank',
        'Patient.telecom.rank is positiveInt: a discriminator is a primitive matched as an exact string (code, string, uri, url, canonical, id, oid, uuid)',
      ],
      ['Patient.name', 'given', 'Patient.name.given repeats: a discriminator has one value per item'],
      [
        'Patient.contact',
        'modifierExtension',
        'Patient.contact.modifierExtension repeats: a discriminator has one value per item',
      ],
      [
        'Patient.link',
        'other',
        'Patient.link.other is Reference: a discriminator is a primitive matched as an exact string (code, string, uri, url, canonical, id, oid, uuid)',
      ],
    ];
    for (const [path, name, message] of cases) {
      const key = name.includes('.') ? `["${name}"]` : `.${name}`;
      expect(only(`allow: [Patient]\nwhere:\n  ${path}:\n    ${name}: [x]\n`)).toEqual([
        `where["${path}"]${key}`,
        message,
        7,
      ]);
    }
    const obs = profile(
      'obs-component',
      'Observation',
      'allow: [Observation.component]\nwhere:\n  Observation.component:\n    value[x]: [x]\n    valueString: [x]\n',
    );
    const r = compileCatalog(catalogFiles({ 'fhir-profiles/obs-component.yaml': obs }));
    expect(r.issues.map((i) => [i.path, i.message])).toEqual([
      [
        'where["Observation.component"]["value[x]"]',
        'Observation.component.value[x] is a choice element: a discriminator has one type',
      ],
      [
        'where["Observation.component"].valueString',
        'Observation.component.valueString is a choice element: a discriminator has one type',
      ],
    ]);
  });

  it('the shape: at least one discriminator, at least one non-empty string value each', () => {
    expect(
      issuesOf(
        'allow: [Patient]\nwhere:\n  Patient.telecom: {}\n  Patient.address: { use: [] }\n  Patient.name: { use: [official, ""] }\n  Patient.identifier: { system: [1] }\n  Patient.link: [type]\n',
      ).map((i) => [i.path, i.message, i.line]),
    ).toEqual([
      ['where["Patient.telecom"]', 'expected at least one discriminator: { <child element>: [values] }', 6],
      ['where["Patient.address"].use', 'expected at least one value to keep', 7],
      ['where["Patient.name"].use[1]', 'expected a non-empty value', 8],
      ['where["Patient.identifier"].system[0]', 'Invalid input: expected string, received number', 9],
      ['where["Patient.link"]', 'Invalid input: expected record, received array', 10],
    ]);
  });

  it('every problem at once', () => {
    const issues = issuesOf(
      'allow: [Patient.name]\nwhere:\n  Patient.name: { given: [x], sytem: [y] }\n  Patient.telecom: { system: [phone] }\n',
    );
    expect(issues.map((i) => i.path)).toEqual([
      'where["Patient.name"].given',
      'where["Patient.name"].sytem',
      'where["Patient.telecom"]',
    ]);
  });
});

describe('where: the catalog hash', () => {
  it('changes when a filter is added or its values change, and not otherwise', () => {
    const hash = (body: string): string | undefined => withPatient(body).catalog?.hash;
    const none = hash('allow: [Patient]\n');
    const phone = hash('allow: [Patient]\nwhere:\n  Patient.telecom: { system: [phone] }\n');
    const phoneEmail = hash('allow: [Patient]\nwhere:\n  Patient.telecom: { system: [phone, email] }\n');
    const use = hash('allow: [Patient]\nwhere:\n  Patient.telecom: { use: [phone] }\n');
    for (const h of [none, phone, phoneEmail, use]) expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set([none, phone, phoneEmail, use]).size).toBe(4);
    expect(hash('allow: [Patient]\nwhere:\n  Patient.telecom:\n    system:\n      - phone\n')).toBe(phone);
  });
});
