// compileCatalog (the pure core) on a small synthetic catalog broken one way at a time: each problem is reported
// with its file, the YAML path inside the file, the line and what was expected; every problem, not just the first.
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import type { CatalogIssue } from '../../src/catalog/issues.js';
import { CLASSIFICATION, OBS_DEID, SERVICES, TOPICS, catalogFiles, profile } from './fixtures.js';

function issuesOf(overrides: Record<string, string | null>): readonly CatalogIssue[] {
  const r = compileCatalog(catalogFiles(overrides));
  expect(r.catalog).toBeUndefined();
  return r.issues;
}

/** The only issue, checked whole. */
function only(overrides: Record<string, string | null>): CatalogIssue {
  const issues = issuesOf(overrides);
  expect(issues).toHaveLength(1);
  return issues[0] as CatalogIssue;
}

describe('compileCatalog: the base fixture', () => {
  it('compiles with no issue, with defaults applied', () => {
    const r = compileCatalog(catalogFiles());
    expect(r.issues).toEqual([]);
    const c = r.catalog;
    expect(c?.services.get('clinic')).toEqual({
      id: 'clinic',
      owner: 'clinical',
      description: 'Care.',
      classification: 'phi',
      external: false,
      keyDir: 'keys/clinic',
      file: 'subjects/services.yaml',
    });
    expect(c?.profiles.get('patient-all')).toMatchObject({
      url: 'https://phi-broker.dev/fhir/StructureDefinition/patient-all',
      deidentified: false,
      markMasked: false,
      transforms: {},
      contained: {},
    });
    expect(c?.topics.get('Patient')).toEqual({
      resourceType: 'Patient',
      publishers: ['front-desk'],
      subscribers: [{ service: 'clinic', profile: 'patient-all', purpose: 'TREAT' }],
      file: 'subjects/topics.yaml',
    });
    expect(c?.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('compileCatalog: one issue per broken thing', () => {
  it('YAML syntax error, with its line', () => {
    expect(
      only({ 'subjects/topics.yaml': 'topics:\n  Patient:\n    publishers: [front-desk\n    subscribers: []\n' }),
    ).toMatchObject({
      file: 'subjects/topics.yaml',
      path: '',
      message: expect.stringMatching(/^YAML syntax: /),
      line: expect.any(Number),
    });
    // A second `services:` key is a YAML error too; what the file declares is then unknown, so the topics that
    // name its services are not reported as naming undeclared ones.
    expect(only({ 'subjects/services.yaml': `${SERVICES}services: []\n` })).toEqual({
      file: 'subjects/services.yaml',
      path: '',
      message: 'YAML syntax: Map keys must be unique',
      line: 14,
    });
  });

  it('schema violations map to the YAML path and line', () => {
    const issues = issuesOf({
      'subjects/services.yaml': SERVICES.replace('classification: deidentified', 'classification: secret').replace(
        'owner: clinical',
        "owner: ''",
      ),
    });
    expect(issues).toEqual([
      { file: 'subjects/services.yaml', path: 'services[1].owner', message: 'expected the owning team', line: 7 },
      {
        file: 'subjects/services.yaml',
        path: 'services[2].classification',
        message: 'Invalid option: expected one of "phi"|"deidentified"|"internal"|"public"',
        line: 13,
      },
    ]);
    // A service id that is itself invalid is reported where it is declared, and where it is used.
    const badId = issuesOf({ 'subjects/services.yaml': SERVICES.replace('id: research', 'id: Research') });
    expect(badId).toContainEqual({
      file: 'subjects/services.yaml',
      path: 'services[2].id',
      message: 'expected a service id: a lowercase letter, then lowercase letters, digits or dashes (at most 63)',
      line: 10,
    });
    expect(badId).toContainEqual({
      file: 'subjects/topics.yaml',
      path: 'topics.Observation.subscribers[0].service',
      message: "'research' is not a declared service (expected an id from services)",
      line: 11,
    });
  });

  it('unknown key and wrong type', () => {
    const issues = issuesOf({
      'fhir-profiles/patient-all.yaml':
        'id: patient-all\nresourceType: Patient\ndescription: x\nallow: Patient\nmask: true\n',
    });
    expect(issues).toEqual([
      { file: 'fhir-profiles/patient-all.yaml', path: '', message: "unknown key 'mask'", line: 1 },
      {
        file: 'fhir-profiles/patient-all.yaml',
        path: 'allow',
        message: 'Invalid input: expected array, received string',
        line: 4,
      },
    ]);
  });

  it('a subscriber with no profile', () => {
    expect(only({ 'subjects/topics.yaml': TOPICS.replace('        profile: patient-all\n', '') })).toEqual({
      file: 'subjects/topics.yaml',
      path: 'topics.Patient.subscribers[0].profile',
      message: 'missing: expected string',
      line: 5,
    });
  });

  it('a subscriber with an unknown profile id', () => {
    expect(only({ 'subjects/topics.yaml': TOPICS.replace('profile: patient-all', 'profile: patient-some') })).toEqual({
      file: 'subjects/topics.yaml',
      path: 'topics.Patient.subscribers[0].profile',
      message: "unknown profile 'patient-some': expected the id of a profile in fhir-profiles/",
      line: 6,
    });
  });

  it('a profile for another resource type than the topic', () => {
    expect(only({ 'subjects/topics.yaml': TOPICS.replace('profile: patient-all', 'profile: obs-deid') })).toMatchObject(
      {
        path: 'topics.Patient.subscribers[0].profile',
        message: "profile 'obs-deid' is for Observation, not Patient",
      },
    );
  });

  it('an unknown resource type as a topic', () => {
    expect(only({ 'subjects/topics.yaml': TOPICS.replace('  Observation:', '  Observaton:') })).toEqual({
      file: 'subjects/topics.yaml',
      path: 'topics.Observaton',
      message: "'Observaton' is not a FHIR R4 resource type (did you mean 'Observation'?)",
      line: 9,
    });
  });

  it('publishers and subscribers must be declared services', () => {
    const issues = issuesOf({
      'subjects/topics.yaml': TOPICS.replace(
        'publishers: [front-desk]',
        'publishers: [front-desk, lab, broker]',
      ).replace('service: clinic', 'service: ward'),
    });
    expect(issues).toEqual([
      {
        file: 'subjects/topics.yaml',
        path: 'topics.Patient.publishers[1]',
        message: "'lab' is not a declared service (expected an id from services)",
        line: 3,
      },
      {
        file: 'subjects/topics.yaml',
        path: 'topics.Patient.publishers[2]',
        message: "'broker' is the broker itself, not a publishing service",
        line: 3,
      },
      {
        file: 'subjects/topics.yaml',
        path: 'topics.Patient.subscribers[0].service',
        message: "'ward' is not a declared service (expected an id from services)",
        line: 5,
      },
    ]);
  });

  it('duplicate service id, the reserved broker id', () => {
    const issues = issuesOf({
      'subjects/zz-more.yaml':
        'services:\n  - { id: clinic, owner: o, description: d, classification: phi }\n  - { id: broker, owner: o, description: d, classification: internal }\n',
    });
    expect(issues).toEqual([
      {
        file: 'subjects/zz-more.yaml',
        path: 'services[0].id',
        message: "duplicate service id 'clinic' (first declared at subjects/services.yaml services[1])",
        line: 2,
      },
      {
        file: 'subjects/zz-more.yaml',
        path: 'services[1].id',
        message: "'broker' is reserved for the broker itself and cannot be declared",
        line: 3,
      },
    ]);
  });

  it('the audit-signing parties gateway and operator are reserved too (their keys share the key space)', () => {
    const issues = issuesOf({
      'subjects/zz-more.yaml':
        'services:\n  - { id: gateway, owner: o, description: d, classification: internal }\n  - { id: operator, owner: o, description: d, classification: internal }\n',
    });
    expect(issues.map((i) => [i.path, i.message])).toEqual([
      ['services[0].id', "'gateway' is reserved for an audit-signing key (docs/audit.md) and cannot be declared"],
      ['services[1].id', "'operator' is reserved for an audit-signing key (docs/audit.md) and cannot be declared"],
    ]);
  });

  it('duplicate topic across files', () => {
    expect(
      only({
        'subjects/zz.yaml':
          'topics:\n  Patient:\n    publishers: [clinic]\n    subscribers: [{ service: clinic, profile: patient-all, purpose: TREAT }]\n',
      }),
    ).toEqual({
      file: 'subjects/zz.yaml',
      path: 'topics.Patient',
      message: 'duplicate topic Patient (first declared in subjects/topics.yaml)',
      line: 3,
    });
  });

  it('duplicate profile id, and an id that does not match its file name', () => {
    const issues = issuesOf({
      'fhir-profiles/patient-copy.yaml': profile('patient-all', 'Patient', 'allow: [Patient.name]\n'),
    });
    expect(issues).toEqual([
      {
        file: 'fhir-profiles/patient-copy.yaml',
        path: 'id',
        message: "duplicate profile id 'patient-all' (first declared in fhir-profiles/patient-all.yaml)",
        line: 1,
      },
      {
        file: 'fhir-profiles/patient-copy.yaml',
        path: 'id',
        message: "profile id 'patient-all' must match its file name (patient-copy.yaml)",
        line: 1,
      },
    ]);
  });

  it('one subscription per service and type', () => {
    const topics = TOPICS.replace(
      '        purpose: TREAT\n',
      '        purpose: TREAT\n      - { service: clinic, profile: patient-all, purpose: HPAYMT }\n',
    );
    expect(only({ 'subjects/topics.yaml': topics })).toMatchObject({
      path: 'topics.Patient.subscribers[1].service',
      message: "'clinic' already subscribes to Patient (subscribers[0]): one subscription per service and type",
    });
  });

  it('a de-identified service may not receive through an identified profile', () => {
    const topics = TOPICS.replace('service: clinic', 'service: research');
    expect(only({ 'subjects/topics.yaml': topics })).toMatchObject({
      path: 'topics.Patient.subscribers[0].profile',
      message:
        "service 'research' is classified 'deidentified': it may only receive through deidentified profiles, and 'patient-all' is not",
    });
  });

  it('an element path that does not exist in FHIR R4 names the step and the type', () => {
    expect(
      only({
        'fhir-profiles/patient-all.yaml': profile('patient-all', 'Patient', 'allow:\n  - Patient.name.surname\n'),
      }),
    ).toEqual({
      file: 'fhir-profiles/patient-all.yaml',
      path: 'allow[0]',
      message:
        "'Patient.name.surname' is not a FHIR R4 element path: step 3 'surname': HumanName has no element 'surname'",
      line: 5,
    });
  });

  it('allow paths start with the profile type and do not repeat each other', () => {
    const issues = issuesOf({
      'fhir-profiles/patient-all.yaml': profile(
        'patient-all',
        'Patient',
        'allow:\n  - Patient.name\n  - Observation.code\n  - Patient.name.family\n',
      ),
    });
    expect(issues.map((i) => [i.path, i.message])).toEqual([
      ['allow[1]', "'Observation.code' must start with Patient"],
      [
        'allow[2]',
        "'Patient.name.family' overlaps Patient.name (0): allowing a path allows its whole subtree; keep one",
      ],
    ]);
  });

  it('an unknown resourceType in a profile', () => {
    const issues = issuesOf({
      'fhir-profiles/patient-all.yaml': profile('patient-all', 'Patientt', 'allow: [Patientt]\n'),
    });
    expect(issues).toContainEqual({
      file: 'fhir-profiles/patient-all.yaml',
      path: 'resourceType',
      message: "'Patientt' is not a FHIR R4 resource type",
      line: 2,
    });
  });

  it('contained resources need <Type>.contained allowed and a real type', () => {
    const issues = issuesOf({
      'fhir-profiles/patient-all.yaml': profile(
        'patient-all',
        'Patient',
        'allow: [Patient.name]\ncontained:\n  Organization: [Organization.name]\n  Widget: [Widget.id]\n',
      ),
    });
    expect(issues.map((i) => [i.path, i.message])).toEqual([
      [
        'contained',
        'contained resources are listed but Patient.contained is not allowed: add it to allow (or remove contained)',
      ],
      ['contained.Widget', "'Widget' is not a FHIR R4 resource type"],
    ]);
  });

  it('missing classification file', () => {
    expect(
      only({
        'fhir-profiles/classification.yaml': null,
        'fhir-profiles/obs-deid.yaml': null,
        'subjects/topics.yaml': TOPICS.split('  Observation:')[0] ?? '',
      }),
    ).toEqual({
      file: '(catalog)',
      path: '',
      message: 'no element classification: expected fhir-profiles/classification.yaml',
    });
  });

  it('classification paths are checked too', () => {
    const issues = issuesOf({
      'fhir-profiles/classification.yaml': CLASSIFICATION.replace(
        '  - Patient.name\n',
        '  - Patient.nam\n  - "*.nothing"\n',
      ).replace(
        'plaintext: [resourceType, meta.profile, meta.security]',
        'plaintext: [resourceType, meta.profile, meta.bogus]',
      ),
    });
    expect(issues.map((i) => [i.path, i.message])).toEqual([
      [
        'directIdentifiers[3]',
        "not a FHIR R4 element path: step 2 'nam': Patient has no element 'nam' (did you mean 'name'?)",
      ],
      [
        'directIdentifiers[4]',
        "no FHIR R4 resource type has 'nothing' (step 1 'nothing': DomainResource has no element 'nothing')",
      ],
      ['plaintext', "missing 'meta.security': the wire format routes and checks policy on it"],
      [
        'plaintext[2]',
        "expected 'resourceType' or an element every resource has (meta.profile, meta.security): step 2 'bogus': Meta has no element 'bogus'",
      ],
    ]);
  });

  it('plaintext cannot name more than the wire format leaves unencrypted', () => {
    const issues = issuesOf({
      'fhir-profiles/classification.yaml': CLASSIFICATION.replace(
        'plaintext: [resourceType, meta.profile, meta.security]',
        'plaintext: [resourceType, meta.profile, meta.security, meta.lastUpdated]',
      ),
    });
    expect(issues.map((i) => [i.path, i.message])).toEqual([
      [
        'plaintext[3]',
        "'meta.lastUpdated' cannot be plaintext: envelope v1 leaves exactly resourceType, meta.profile, meta.security unencrypted",
      ],
    ]);
  });

  it('lists every problem at once, sorted by file and line', () => {
    const issues = issuesOf({
      'subjects/topics.yaml': TOPICS.replace('profile: patient-all', 'profile: nope').replace(
        'publishers: [clinic]',
        'publishers: [nobody]',
      ),
      'fhir-profiles/obs-deid.yaml': OBS_DEID.replace('Observation.code\n', 'Observation.cod\n'),
    });
    expect(issues.map((i) => `${i.file}:${i.line ?? 0}:${i.path}`)).toEqual([
      'fhir-profiles/obs-deid.yaml:7:allow[1]',
      'subjects/topics.yaml:6:topics.Patient.subscribers[0].profile',
      'subjects/topics.yaml:9:topics.Observation.publishers[0]',
    ]);
  });
});
