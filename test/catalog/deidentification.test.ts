// Transform type checks and the de-identification rule (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)) on synthetic
// profiles: a direct identifier needs pseudonym/drop, a quasi-identifier year/zip3/drop, for every choice type.
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import type { CatalogIssue } from '../../src/catalog/issues.js';
import { catalogFiles, profile } from './fixtures.js';

const FILE = 'fhir-profiles/obs-deid.yaml';

function obsIssues(body: string): Array<[string, string]> {
  const r = compileCatalog(catalogFiles({ [FILE]: profile('obs-deid', 'Observation', `deidentified: true\n${body}`) }));
  return r.issues.map((i: CatalogIssue) => {
    expect(i.file).toBe(FILE);
    return [i.path, i.message];
  });
}

function patientIssues(body: string): Array<[string, string]> {
  const files = catalogFiles({
    'fhir-profiles/patient-deid.yaml': profile('patient-deid', 'Patient', `deidentified: true\n${body}`),
  });
  return compileCatalog(files).issues.map((i) => [i.path, i.message]);
}

describe('transform types', () => {
  it('year on date, dateTime and Period only', () => {
    expect(
      obsIssues(
        'allow: [Observation.issued, Observation.effectivePeriod, Observation.valueQuantity]\ntransforms:\n  Observation.issued: year\n  Observation.effectivePeriod: year\n  Observation.valueQuantity: year\n',
      ),
    ).toEqual([
      [
        'transforms["Observation.issued"]',
        'year applies to date, dateTime and Period elements (an instant cannot hold a bare year: drop it); Observation.issued is instant',
      ],
      [
        'transforms["Observation.valueQuantity"]',
        'year applies to date, dateTime and Period elements (an instant cannot hold a bare year: drop it); Observation.valueQuantity is Quantity',
      ],
    ]);
    // (The de-identification rule then also fires for the untransformed types; only the type error is checked here.)
    expect(
      obsIssues('allow:\n  - Observation.effective[x]\ntransforms:\n  Observation.effective[x]: year\n').filter(([p]) =>
        p.startsWith('transforms'),
      ),
    ).toEqual([
      [
        'transforms["Observation.effective[x]"]',
        'year applies to date, dateTime and Period elements (an instant cannot hold a bare year: drop it); Observation.effective[x] is dateTime|Period|Timing|instant',
      ],
    ]);
  });

  it('zip3 only on Address.postalCode', () => {
    expect(
      patientIssues(
        'allow: [Patient.address.postalCode, Patient.address.state]\ntransforms:\n  Patient.address.postalCode: zip3\n  Patient.address.state: zip3\n',
      ),
    ).toEqual([
      [
        'transforms["Patient.address.state"]',
        'zip3 applies only to Address.postalCode; Patient.address.state is Address.state',
      ],
    ]);
  });

  it('pseudonym on string-valued primitives, Reference and Identifier', () => {
    expect(
      obsIssues(
        'allow: [Observation.id, Observation.subject, Observation.identifier, Observation.code]\ntransforms:\n  Observation.id: pseudonym\n  Observation.subject: pseudonym\n  Observation.identifier: pseudonym\n  Observation.code: pseudonym\n',
      ),
    ).toEqual([
      [
        'transforms["Observation.code"]',
        'pseudonym applies to string-valued primitives (string, id, code, uri, …) and Reference or Identifier elements; Observation.code is CodeableConcept',
      ],
    ]);
  });

  it('drop anywhere; transforms must be inside an allowed path and not nested', () => {
    expect(
      obsIssues(
        'allow: [Observation.code]\ntransforms:\n  Observation.code.text: drop\n  Observation.code: drop\n  Observation.status: drop\n',
      ),
    ).toEqual([
      [
        'transforms["Observation.code"]',
        "'Observation.code' is inside or around the transform on 'Observation.code.text': keep one",
      ],
      [
        'transforms["Observation.status"]',
        "'Observation.status' is not inside any allowed path: the transform would never apply",
      ],
    ]);
  });

  it('a transform path that is not an element names the failing step', () => {
    expect(obsIssues('allow: [Observation.code]\ntransforms:\n  Observation.subjet: pseudonym\n')).toEqual([
      [
        'transforms["Observation.subjet"]',
        "'Observation.subjet' is not a FHIR R4 element path: step 2 'subjet': Observation has no element 'subjet' (did you mean 'subject'?)",
      ],
    ]);
  });
});

describe('de-identified profiles', () => {
  it('a direct identifier allowed as is (or inside an allowed ancestor) is an error naming it', () => {
    expect(patientIssues('allow: [Patient.name.family, Patient.gender]\n')).toEqual([
      [
        'allow[0]',
        'lets direct identifier Patient.name through at Patient.name.family: a de-identified profile must pseudonymise or drop it (transforms: {Patient.name.family: drop|pseudonym})',
      ],
    ]);
    const whole = patientIssues(
      'allow: [Patient]\ntransforms:\n  Patient.id: pseudonym\n  Patient.identifier: pseudonym\n  Patient.name: drop\n  Patient.address.line: drop\n  Patient.birthDate: year\n  Patient.address.postalCode: zip3\n',
    );
    expect(whole).toEqual([
      [
        'allow[0]',
        'lets direct identifier Patient.extension(http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName) through at Patient.extension(http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName): a de-identified profile must pseudonymise or drop it (transforms: {Patient.extension(http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName): drop|pseudonym})',
      ],
    ]);
  });

  it('an extension allowed by URL is checked against identifiers of that URL only', () => {
    expect(
      patientIssues('allow:\n  - Patient.extension(http://hl7.org/fhir/us/core/StructureDefinition/us-core-race)\n'),
    ).toEqual([]);
  });

  it('an extension allowed without a URL is an error: a de-identified profile passes only extensions it names', () => {
    expect(
      patientIssues(
        'allow:\n  - Patient.extension\ntransforms:\n  Patient.extension(http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName): drop\n',
      ),
    ).toEqual([
      [
        'allow[0]',
        'allows Patient.extension without a URL: a de-identified profile passes only the extensions it names (Patient.extension(<url>)), so this allows nothing',
      ],
    ]);
    expect(obsIssues('allow: [Observation.code, Observation.component.modifierExtension]\n')).toEqual([
      [
        'allow[1]',
        'allows Observation.component.modifierExtension without a URL: a de-identified profile passes only the extensions it names (Observation.component.modifierExtension(<url>)), so this allows nothing',
      ],
    ]);
  });

  it('a free-text leaf or an extension by URL named inside an allowed path loads (a deliberate choice); other nesting does not', () => {
    const X = 'http://example.org/fhir/StructureDefinition/lab-note';
    expect(
      obsIssues(
        `allow:\n  - Observation.code\n  - Observation.code.text\n  - Observation.component\n  - Observation.component.valueString\n  - Observation.code.coding.display\n  - Observation.code.extension(${X})\n`,
      ),
    ).toEqual([]);
    expect(
      obsIssues(
        'allow:\n  - Observation.code\n  - Observation.code.coding\n  - Observation.component.value[x]\n  - Observation.component\n',
      ),
    ).toEqual([
      [
        'allow[1]',
        "'Observation.code.coding' overlaps Observation.code (0): allowing a path allows its whole subtree; keep one",
      ],
      [
        'allow[3]',
        "'Observation.component' overlaps Observation.component.value[x] (2): allowing a path allows its whole subtree; keep one",
      ],
    ]);
    // Not de-identified: nesting stays an error, free text or not.
    const plain = compileCatalog(
      catalogFiles({
        [FILE]: profile('obs-deid', 'Observation', 'allow: [Observation.code, Observation.code.text]\n'),
      }),
    );
    expect(plain.issues.filter((i) => i.file === FILE).map((i) => [i.path, i.message])).toEqual([
      [
        'allow[1]',
        "'Observation.code.text' overlaps Observation.code (0): allowing a path allows its whole subtree; keep one",
      ],
    ]);
  });

  it('a quasi-identifier needs year/zip3/drop; pseudonym does not generalise', () => {
    expect(
      patientIssues(
        'allow: [Patient.birthDate, Patient.address.postalCode]\ntransforms:\n  Patient.address.postalCode: pseudonym\n',
      ),
    ).toEqual([
      [
        'allow[0]',
        'lets quasi-identifier Patient.birthDate through at Patient.birthDate untransformed: a de-identified profile must generalise it (year for dates, zip3 for postal codes) or drop it',
      ],
      [
        'allow[1]',
        'lets quasi-identifier Patient.address.postalCode through at Patient.address.postalCode untransformed: a de-identified profile must generalise it (year for dates, zip3 for postal codes) or drop it',
      ],
    ]);
  });

  it('a choice quasi-identifier must be covered for each of its types; a Period through start and end', () => {
    const base =
      'allow:\n  - Observation.effective[x]\ntransforms:\n  Observation.effectiveDateTime: year\n  Observation.effectivePeriod.start: year\n';
    expect(obsIssues(base)).toEqual([
      [
        'allow[0]',
        'lets quasi-identifier Observation.effective[x] through at Observation.effectiveInstant untransformed: a de-identified profile must generalise it (year for dates, zip3 for postal codes) or drop it',
      ],
      [
        'allow[0]',
        'lets quasi-identifier Observation.effective[x] through at Observation.effectivePeriod.end untransformed: a de-identified profile must generalise it (year for dates, zip3 for postal codes) or drop it',
      ],
      [
        'allow[0]',
        'lets quasi-identifier Observation.effective[x] through at Observation.effectiveTiming untransformed: a de-identified profile must generalise it (year for dates, zip3 for postal codes) or drop it',
      ],
    ]);
    expect(
      obsIssues(
        `${base}  Observation.effectivePeriod.end: year\n  Observation.effectiveTiming: drop\n  Observation.effectiveInstant: drop\n`,
      ),
    ).toEqual([]);
    // One type allowed: only that type is checked.
    expect(
      obsIssues('allow: [Observation.effectiveDateTime]\ntransforms:\n  Observation.effectiveDateTime: year\n'),
    ).toEqual([]);
  });

  it('*.x identifiers apply to every type that has x (references to the patient, resource ids)', () => {
    expect(obsIssues('allow: [Observation.id, Observation.subject.reference, Observation.code]\n')).toEqual([
      [
        'allow[0]',
        'lets direct identifier Observation.id through at Observation.id: a de-identified profile must pseudonymise or drop it (transforms: {Observation.id: drop|pseudonym})',
      ],
      [
        'allow[1]',
        'lets direct identifier Observation.subject through at Observation.subject.reference: a de-identified profile must pseudonymise or drop it (transforms: {Observation.subject.reference: drop|pseudonym})',
      ],
    ]);
    expect(
      obsIssues(
        'allow: [Observation.id, Observation.subject.reference, Observation.code]\ntransforms:\n  Observation.id: pseudonym\n  Observation.subject: pseudonym\n',
      ),
    ).toEqual([]);
  });

  it('contained resources of a de-identified profile are checked with their own type', () => {
    expect(
      obsIssues(
        'allow: [Observation.code, Observation.contained]\ncontained:\n  Patient: [Patient.gender, Patient.name]\n',
      ),
    ).toEqual([
      [
        'contained.Patient[1]',
        'lets direct identifier Patient.name through at Patient.name: a de-identified profile must pseudonymise or drop it (transforms: {Patient.name: drop|pseudonym})',
      ],
    ]);
    expect(
      obsIssues(
        'allow: [Observation.code, Observation.contained]\ncontained:\n  Patient: [Patient.gender, Patient.name]\ntransforms:\n  Patient.name: drop\n',
      ),
    ).toEqual([]);
  });

  it('identified profiles are not held to the rule', () => {
    const r = compileCatalog(catalogFiles({ [FILE]: profile('obs-deid', 'Observation', 'allow: [Observation]\n') }));
    // The research service is classified deidentified, so only that cross-check fires.
    expect(r.issues.map((i) => i.message)).toEqual([
      "service 'research' is classified 'deidentified': it may only receive through deidentified profiles, and 'obs-deid' is not",
    ]);
  });
});
