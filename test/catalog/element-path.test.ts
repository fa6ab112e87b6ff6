// The catalog's element-path grammar against FHIR R4: datatype and backbone descent, choice types,
// extension URLs, content references, and the error each wrong step gets.
import { describe, expect, it } from 'vitest';
import { resolveElementPath, resolveRelativePath, splitPath } from '../../src/catalog/element-path.js';

function ok(path: string) {
  const r = resolveElementPath(path);
  if (!r.ok) throw new Error(`expected ${path} to resolve: ${r.error}`);
  return r;
}

function fails(path: string) {
  const r = resolveElementPath(path);
  if (r.ok) throw new Error(`expected ${path} to fail`);
  return r;
}

describe('resolveElementPath: good paths', () => {
  it('a resource type alone is the whole resource', () => {
    expect(ok('Patient')).toMatchObject({ root: 'Patient', steps: [], typeCodes: ['Patient'], repeats: false });
  });

  it('descends through complex datatypes', () => {
    const r = ok('Patient.name.family');
    expect(r.typeCodes).toEqual(['string']);
    expect(r.repeats).toBe(false);
    expect(r.steps.map((s) => [s.owner, s.name, s.repeats])).toEqual([
      ['Patient', 'name', true],
      ['HumanName', 'family', false],
    ]);
    expect(ok('Observation.code.coding.system').typeCodes).toEqual(['uri']);
    expect(ok('Patient.name.given').repeats).toBe(true);
  });

  it('descends through backbone elements', () => {
    const r = ok('Patient.contact.name');
    expect(r.steps[0]).toMatchObject({
      name: 'contact',
      owner: 'Patient',
      typeCodes: ['Patient.contact'],
      repeats: true,
    });
    expect(r.typeCodes).toEqual(['HumanName']);
  });

  it('follows content references (Questionnaire.item.item, Parameters.parameter.part)', () => {
    expect(ok('Questionnaire.item.item.item.linkId').typeCodes).toEqual(['string']);
    expect(ok('Questionnaire.item.item').typeCodes).toEqual(['Questionnaire.item']);
    expect(ok('Parameters.parameter.part.valueCode').typeCodes).toEqual(['code']);
  });

  it('a choice with [x] has all its types; with one type it may descend', () => {
    const all = ok('Observation.value[x]');
    expect(all.typeCodes).toContain('Quantity');
    expect(all.typeCodes).toContain('string');
    expect(all.steps[0]?.jsonNames).toContain('valueQuantity');
    expect(all.steps[0]).toMatchObject({ choice: true });
    expect(all.steps[0]?.choiceType).toBeUndefined();
    const one = ok('Observation.valueQuantity.value');
    expect(one.steps[0]).toMatchObject({
      name: 'value',
      choice: true,
      choiceType: 'Quantity',
      jsonNames: ['valueQuantity'],
    });
    expect(one.typeCodes).toEqual(['decimal']);
    expect(ok('Patient.deceasedDateTime').typeCodes).toEqual(['dateTime']);
    expect(ok('Condition.onsetAge.value').typeCodes).toEqual(['decimal']);
  });

  it('an extension step may carry a URL (dots inside the URL do not split)', () => {
    const url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race';
    const r = ok(`Patient.extension(${url}).extension.valueCoding.code`);
    expect(r.steps[0]).toMatchObject({ name: 'extension', url, typeCodes: ['Extension'] });
    expect(r.typeCodes).toEqual(['code']);
    expect(ok('Patient.modifierExtension(http://example.org/x)').steps[0]?.url).toBe('http://example.org/x');
  });

  it('descends into Reference children like any datatype', () => {
    expect(ok('Observation.subject.reference').typeCodes).toEqual(['string']);
    expect(ok('Observation.subject.identifier.value').typeCodes).toEqual(['string']);
  });

  it('resolves relative paths from any type', () => {
    const r = resolveRelativePath('Resource', 'meta.profile');
    expect(r).toMatchObject({ ok: true, typeCodes: ['canonical'], repeats: true });
  });
});

describe('resolveElementPath: bad paths name the failing step and what was expected', () => {
  it('unknown resource type, with a suggestion', () => {
    expect(fails('Patinet.name')).toEqual({
      ok: false,
      step: 0,
      error: "'Patinet' is not a FHIR R4 resource type (did you mean 'Patient'?)",
    });
  });

  it('unknown element names the type it was looked up on', () => {
    expect(fails('Patient.nmae')).toEqual({
      ok: false,
      step: 1,
      error: "step 2 'nmae': Patient has no element 'nmae' (did you mean 'name'?)",
    });
    expect(fails('Patient.name.surname').error).toBe("step 3 'surname': HumanName has no element 'surname'");
    expect(fails('Patient.contact.nam').error).toBe(
      "step 3 'nam': Patient.contact has no element 'nam' (did you mean 'name'?)",
    );
  });

  it('a choice element must be written with [x] or one type', () => {
    expect(fails('Observation.value').error).toBe(
      "step 2 'value': Observation.value is a choice element: write 'value[x]' or name one type (e.g. valueQuantity)",
    );
    expect(fails('Observation.valueHumanName').error).toMatch(
      /^step 2 'valueHumanName': Observation has no element 'valueHumanName'/,
    );
    expect(fails('Patient.name[x]').error).toBe(
      "step 2 'name[x]': Patient.name is not a choice element: write 'name' without [x]",
    );
  });

  it('cannot descend past a choice with several types', () => {
    expect(fails('Observation.value[x].unit')).toMatchObject({
      step: 2,
      error:
        "step 3 'unit': Observation.value[x] has several types (Quantity, CodeableConcept, string, boolean, integer, Range, Ratio, SampledData, time, dateTime, Period); name one (e.g. valueQuantity) to descend into it",
    });
  });

  it('primitives and resources have no child steps', () => {
    expect(fails('Patient.birthDate.year').error).toBe(
      "step 3 'year': Patient.birthDate is a primitive (date) and has no child elements",
    );
    expect(fails('Patient.contained.id').error).toBe(
      "step 3 'id': Patient.contained holds whole resources; list them in the profile's contained map instead of descending into them",
    );
  });

  it('only extensions take a URL', () => {
    expect(fails('Patient.name(http://x.org/y)').error).toBe(
      "step 2 'name(http://x.org/y)': 'name' is not an extension: only extension and modifierExtension take a (url)",
    );
  });

  it('malformed text', () => {
    expect(fails('Patient..name').error).toBe('empty step 2 (two dots, or a dot at an end)');
    expect(fails('Patient.name.').error).toBe('empty step 3 (two dots, or a dot at an end)');
    expect(fails('Patient.extension(http://x.org').error).toBe("unclosed '(' in step 2");
    expect(fails('Patient.na me').error).toBe("step 2 'na me' is not an element name, name[x] or extension(url)");
    expect(splitPath('A.extension(http://a.b/c).value[x]')).toEqual({
      steps: [
        { text: 'A', name: 'A' },
        { text: 'extension(http://a.b/c)', name: 'extension', url: 'http://a.b/c' },
        { text: 'value[x]', name: 'value[x]' },
      ],
    });
  });
});
