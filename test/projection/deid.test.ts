// De-identified profiles (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)): free text and unnamed extensions are withheld at
// every depth inside allowed subtrees. First the four leaks a security review found, through the SHIPPED
// observation-deid profile; then the rule on synthetic profiles, element by element.
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { isBrokerError } from '../../src/wire/errors.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import type { Json } from './fixtures.js';
import { KEY_A, PROFILE_URL, SHIPPED, profile, refToken } from './fixtures.js';

const ctx = { pseudonymize: pseudonymizer(KEY_A) };
const EXT = 'http://example.org/fhir/StructureDefinition/lab-note';
const NAME = 'BP taken by Marisol Quillfeather at 42 Lantern Row';
const SSN = 'Cuff slipped, repeat. Patient SSN 999-41-7731';
const BIRTH = '1974-12-25T10:11:12Z';
const MRN = 'MRN-7731-DEMO';

/** A synthetic blood-pressure Observation carrying the review's four planted strings (and a few more). */
function leakyObservation(): Json {
  const systolic = { system: 'http://loinc.org', code: '8480-6', display: 'Systolic blood pressure' };
  return {
    resourceType: 'Observation',
    id: 'bp-1',
    status: 'final',
    code: {
      extension: [{ url: EXT, valueDateTime: BIRTH }],
      coding: [{ system: 'http://loinc.org', code: '85354-9', display: 'Blood pressure panel' }],
      text: NAME,
    },
    subject: {
      reference: 'Patient/qf-1',
      display: 'Marisol Quillfeather',
      extension: [{ url: EXT, valueString: MRN }],
    },
    effectiveDateTime: '2026-03-14T09:26:53Z',
    component: [
      {
        code: { coding: [systolic], text: NAME },
        valueQuantity: { value: 128, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' },
      },
      { code: { coding: [{ system: 'http://loinc.org', code: '8716-3' }] }, valueString: SSN },
    ],
    referenceRange: [
      {
        low: { value: 90, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' },
        text: `normal for ${NAME}`,
        _text: { extension: [{ url: EXT, valueString: MRN }] },
      },
    ],
    interpretation: [
      {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
            code: 'N',
            _code: { extension: [{ url: EXT, valueString: MRN }] },
          },
        ],
      },
    ],
  };
}

describe('the shipped observation-deid profile (the four leaks of the security review)', () => {
  const catalog = loadCatalog(SHIPPED);
  const def = catalog.profiles.get('observation-deid');
  if (def === undefined) throw new Error('observation-deid is not in the shipped catalog');
  const project = compileProfile(def);

  it('delivers none of the planted strings, keeps codes, quantities and the year', () => {
    const out = project(leakyObservation(), ctx);
    const text = JSON.stringify(out);
    for (const planted of ['Quillfeather', 'Lantern', '999-41-7731', '1974', MRN, 'qf-1', 'bp-1'])
      expect(text).not.toContain(planted);
    expect(out['effectiveDateTime']).toBe('2026');
    expect(out['subject']).toEqual({ reference: `Patient/${refToken(KEY_A, 'qf-1')}` });
    // Code displays and unit labels are named in the profile on purpose; CodeableConcept.text is not.
    expect(out['code']).toEqual({
      coding: [{ system: 'http://loinc.org', code: '85354-9', display: 'Blood pressure panel' }],
    });
    expect(out['component']).toEqual([
      {
        code: { coding: [{ system: 'http://loinc.org', code: '8480-6', display: 'Systolic blood pressure' }] },
        valueQuantity: { value: 128, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' },
      },
      { code: { coding: [{ system: 'http://loinc.org', code: '8716-3' }] } },
    ]);
    expect(out['referenceRange']).toEqual([
      { low: { value: 90, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
    ]);
    expect(out['interpretation']).toEqual([
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'N' }] },
    ]);
    expect(out['meta']).toEqual({ profile: [def.url] });
  });

  it('a modifierExtension inside an allowed element withholds that element', () => {
    const obs = leakyObservation();
    (obs['component'] as Json[])[0] = {
      ...((obs['component'] as Json[])[0] as Json),
      modifierExtension: [{ url: EXT, valueBoolean: true }],
    };
    const out = project(obs, ctx);
    expect(out['component']).toEqual([{ code: { coding: [{ system: 'http://loinc.org', code: '8716-3' }] } }]);
  });
});

describe('the shipped parameters-terminology profile (names its free-text leaves on purpose)', () => {
  const def = loadCatalog(SHIPPED).profiles.get('parameters-terminology');
  if (def === undefined) throw new Error('parameters-terminology is not in the shipped catalog');
  const project = compileProfile(def);

  it('keeps parameter names and named string values; Coding.display, CodeableConcept.text and extensions go', () => {
    const out = project(
      {
        resourceType: 'Parameters',
        parameter: [
          { name: 'code', valueCode: '8480-6', _valueCode: { extension: [{ url: EXT, valueString: MRN }] } },
          { name: 'display', valueString: 'Systolic blood pressure' },
          { name: 'coding', valueCoding: { system: 'http://loinc.org', code: '8480-6', display: NAME } },
          {
            name: 'concept',
            valueCodeableConcept: { text: NAME, coding: [{ system: 'http://loinc.org', code: '8480-6' }] },
            extension: [{ url: EXT, valueString: MRN }],
          },
          { name: 'patient', valueHumanName: { family: 'Quillfeather' } },
        ],
      },
      ctx,
    );
    expect(out['parameter']).toEqual([
      { name: 'code', valueCode: '8480-6' },
      { name: 'display', valueString: 'Systolic blood pressure' },
      { name: 'coding', valueCoding: { system: 'http://loinc.org', code: '8480-6' } },
      { name: 'concept', valueCodeableConcept: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] } },
      { name: 'patient' },
    ]);
  });
});

describe('de-identified projection rules (synthetic profiles)', () => {
  const run = (allow: string[], res: Json, more: Parameters<typeof profile>[2] = {}): Json =>
    compileProfile(profile('Observation', allow, { deidentified: true, ...more }))(res, ctx);

  it('an extension passes only when a path names its URL; its value is then named, nested extensions are not', () => {
    const code = {
      coding: [{ system: 'http://loinc.org', code: '85354-9' }],
      extension: [
        { url: EXT, valueString: 'kept: named', extension: [{ url: 'http://example.org/inner', valueString: MRN }] },
        { url: 'http://example.org/other', valueString: MRN },
      ],
    };
    const obs = { resourceType: 'Observation', status: 'final', code };
    expect(run(['Observation.code'], obs)['code']).toEqual({ coding: code.coding });
    expect(run(['Observation.code', `Observation.code.extension(${EXT})`], obs)['code']).toEqual({
      extension: [{ url: EXT, valueString: 'kept: named' }],
      coding: code.coding,
    });
    // Not de-identified: everything under an allowed element passes, as before.
    expect(compileProfile(profile('Observation', ['Observation.code']))(obs, ctx)['code']).toEqual(code);
  });

  it('free text passes only when named exactly; value[x] does not name valueString', () => {
    const obs = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: NAME },
      valueString: SSN,
      _valueString: { extension: [{ url: EXT, valueString: MRN }] },
    };
    expect(run(['Observation.code', 'Observation.value[x]'], obs)).toEqual({
      resourceType: 'Observation',
      meta: { profile: [PROFILE_URL] },
    });
    expect(run(['Observation.code.text', 'Observation.valueString'], obs)).toEqual({
      resourceType: 'Observation',
      meta: { profile: [PROFILE_URL] },
      code: { text: NAME },
      valueString: SSN,
    });
  });

  it('Narrative never passes, even with the whole resource allowed; contained resources follow the same rule', () => {
    const obs = {
      resourceType: 'Observation',
      text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${NAME}</div>` },
      contained: [
        {
          resourceType: 'Specimen',
          id: 'sp',
          type: { text: NAME, coding: [{ system: 'http://snomed.info/sct', code: '119297000' }] },
        },
      ],
      status: 'final',
      code: { text: NAME, coding: [{ system: 'http://loinc.org', code: '85354-9', display: 'x' }] },
      specimen: { reference: '#sp', display: NAME },
    };
    const out = run(['Observation'], obs, { contained: { Specimen: ['Specimen'] } });
    expect(out).toEqual({
      resourceType: 'Observation',
      meta: { profile: [PROFILE_URL] },
      contained: [
        {
          resourceType: 'Specimen',
          id: 'sp',
          type: { coding: [{ system: 'http://snomed.info/sct', code: '119297000' }] },
        },
      ],
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
    });
    // Reference.reference is a string too: named, it passes.
    expect(
      run(['Observation.specimen', 'Observation.specimen.reference'], {
        ...obs,
        specimen: { reference: 'Specimen/sp-9', display: NAME },
      })['specimen'],
    ).toEqual({ reference: 'Specimen/sp-9' });
  });

  it('pseudonym on Reference keeps reference and type only; on Identifier system, value, type codings (no text, no display)', () => {
    const obs = {
      resourceType: 'Observation',
      identifier: [
        {
          use: 'official',
          system: 'urn:oid:1.2.3',
          value: 'A-77',
          type: {
            text: NAME,
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'FILL', display: NAME }],
          },
          assigner: { display: NAME },
        },
      ],
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
      subject: {
        reference: 'Patient/qf-1',
        type: 'Patient',
        display: NAME,
        _reference: { extension: [{ url: EXT, valueString: MRN }] },
        identifier: { value: MRN },
      },
    };
    const out = run(['Observation.identifier', 'Observation.subject'], obs, {
      transforms: { 'Observation.identifier': 'pseudonym', 'Observation.subject': 'pseudonym' },
    });
    expect(out['subject']).toEqual({ reference: `Patient/${refToken(KEY_A, 'qf-1')}`, type: 'Patient' });
    expect(out['identifier']).toEqual([
      {
        system: 'urn:oid:1.2.3',
        value: refToken(KEY_A, 'A-77'),
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'FILL' }] },
      },
    ]);
  });

  it('a withheld modifierExtension on the resource still withholds it (E_MODIFIER_WITHHELD)', () => {
    const obs = { resourceType: 'Observation', status: 'final', modifierExtension: [{ url: EXT, valueBoolean: true }] };
    let caught: unknown;
    try {
      run(['Observation'], obs);
    } catch (e) {
      caught = e;
    }
    expect(isBrokerError(caught) && caught.code).toBe('E_MODIFIER_WITHHELD');
    expect(isBrokerError(caught) && caught.path).toBe('Observation.modifierExtension');
  });
});
