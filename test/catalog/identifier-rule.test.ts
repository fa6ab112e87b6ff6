// Profile identifier rules (`identifiers:` keep/drop by HL7 v2-0203 type or system) at load time: the accepted
// shape and its frozen ProfileDef form, every rejected form with its file, YAML path, line and message, and the
// catalog hash (a rule changes it; a profile without one keeps the hash it had).
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import { catalogCanonicalJson } from '../../src/catalog/hash.js';
import type { CatalogIssue } from '../../src/catalog/issues.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { catalogFiles, profile } from './fixtures.js';

const FILE = 'fhir-profiles/patient-all.yaml';
const ALLOW = 'allow: [Patient.identifier]\n';

function withPatient(body: string): ReturnType<typeof compileCatalog> {
  return compileCatalog(catalogFiles({ [FILE]: profile('patient-all', 'Patient', body) }));
}

/** Every issue as [path, message, line]; the catalog is refused. */
function issuesOf(rule: string): [string, string, number | undefined][] {
  const r = withPatient(ALLOW + rule);
  expect(r.catalog).toBeUndefined();
  return r.issues.map((i: CatalogIssue) => {
    expect(i.file).toBe(FILE);
    return [i.path, i.message, i.line];
  });
}

describe('identifiers: accepted rules', () => {
  it('compiles keep and drop matchers into a frozen ProfileDef.identifiers; drop defaults to []', () => {
    const r = withPatient(
      ALLOW +
        'identifiers:\n  keep:\n    - type: MR\n    - { type: MB, system: "urn:oid:1.2.3" }\n    - system: http://hospital.example.org\n  drop:\n    - type: SS\n    - system: http://hl7.org/fhir/sid/us-ssn\n',
    );
    expect(r.issues).toEqual([]);
    const rule = r.catalog?.profiles.get('patient-all')?.identifiers;
    expect(rule).toEqual({
      keep: [{ type: 'MR' }, { type: 'MB', system: 'urn:oid:1.2.3' }, { system: 'http://hospital.example.org' }],
      drop: [{ type: 'SS' }, { system: 'http://hl7.org/fhir/sid/us-ssn' }],
    });
    expect(Object.isFrozen(rule)).toBe(true);
    expect(Object.isFrozen(rule?.keep)).toBe(true);
    expect(Object.isFrozen(rule?.keep[1])).toBe(true);
    const keepOnly = withPatient(ALLOW + 'identifiers:\n  keep: [{ type: PT }, { type: CAAI }, { type: NNGBR }]\n');
    expect(keepOnly.catalog?.profiles.get('patient-all')?.identifiers).toEqual({
      keep: [{ type: 'PT' }, { type: 'CAAI' }, { type: 'NNGBR' }],
      drop: [],
    });
  });

  it('a profile without identifiers has none, and keeps its catalog hash; adding a rule changes the hash', () => {
    const plain = withPatient(ALLOW);
    expect(plain.catalog?.profiles.get('patient-all')).not.toHaveProperty('identifiers');
    if (plain.catalog === undefined) throw new Error('the base catalog does not compile');
    expect(catalogCanonicalJson(plain.catalog)).not.toContain('identifiers');
    const ruled = withPatient(ALLOW + 'identifiers:\n  keep: [{ type: MR }]\n');
    const other = withPatient(ALLOW + 'identifiers:\n  keep: [{ type: MB }]\n');
    expect(ruled.catalog?.hash).not.toBe(plain.catalog?.hash);
    expect(other.catalog?.hash).not.toBe(ruled.catalog?.hash);
  });

  it('the shipped billing profile keeps MR and the demo MRN system, drops SS and the us-ssn system', () => {
    const billing = loadCatalog({
      subjects: fileURLToPath(new URL('../../subjects', import.meta.url)),
      profiles: fileURLToPath(new URL('../../fhir-profiles', import.meta.url)),
    }).profiles.get('patient-billing');
    expect(billing?.identifiers).toEqual({
      keep: [{ type: 'MR' }, { system: 'urn:oid:2.16.840.1.113883.19.5' }],
      drop: [{ type: 'SS' }, { system: 'http://hl7.org/fhir/sid/us-ssn' }],
    });
    expect(billing?.where).toEqual({});
  });
});

describe('identifiers: rejected rules name the file, the path inside it, the line and what was expected', () => {
  it('an unknown v2-0203 code, in keep or drop (codes are case-sensitive)', () => {
    expect(issuesOf('identifiers:\n  keep:\n    - type: MRN\n  drop:\n    - type: ss\n')).toEqual([
      [
        'identifiers.keep[0].type',
        "'MRN' is not a code of HL7 v2 table 0203 (http://terminology.hl7.org/CodeSystem/v2-0203): use one such as MR, SS, DL, MB, PT",
        7,
      ],
      [
        'identifiers.drop[0].type',
        "'ss' is not a code of HL7 v2 table 0203 (http://terminology.hl7.org/CodeSystem/v2-0203): use one such as MR, SS, DL, MB, PT",
        9,
      ],
    ]);
  });

  it('a system that is not an absolute URI', () => {
    expect(issuesOf('identifiers:\n  keep:\n    - system: hospital mrn\n')).toEqual([
      [
        'identifiers.keep[0].system',
        "'hospital mrn' is not an absolute URI (urn:oid:…, http://…): an Identifier.system is one",
        7,
      ],
    ]);
  });

  it('no keep (default deny needs a keep list), an empty matcher, an unknown key', () => {
    const messages = (rule: string): string[] => issuesOf(rule).map(([p, m]) => `${p}: ${m}`);
    expect(messages('identifiers:\n  drop: [{ type: SS }]\n')).toEqual(['identifiers.keep: missing: expected array']);
    expect(messages('identifiers:\n  keep: []\n')).toEqual([
      'identifiers.keep: expected at least one keep matcher (default deny)',
    ]);
    expect(messages('identifiers:\n  keep: [{}]\n')).toEqual(['identifiers.keep[0]: expected type and/or system']);
    expect(messages('identifiers:\n  keep: [{ code: MR }]\n')).toEqual([
      'identifiers.keep[0]: expected type and/or system',
      "identifiers.keep[0]: unknown key 'code'",
    ]);
  });

  it('a keep matcher that a drop matcher always overrides, and a duplicate matcher', () => {
    expect(
      issuesOf(
        'identifiers:\n  keep:\n    - { type: SS, system: "urn:oid:1.2" }\n    - type: MR\n    - type: MR\n  drop:\n    - type: SS\n',
      ),
    ).toEqual([
      ['identifiers.keep[0]', 'identifiers.drop[0] drops every identifier this matcher keeps', 7],
      ['identifiers.keep[2]', 'the same matcher as identifiers.keep[1]: keep one', 9],
    ]);
  });
});
