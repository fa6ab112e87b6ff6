import { describe, expect, it } from 'vitest';
import { parsePath } from '../../src/projection/path.js';

describe('parsePath', () => {
  it('splits plain, choice and extension-by-URL steps (dots inside the URL are not separators)', () => {
    expect(parsePath('Patient.name.family')).toEqual([
      { name: 'Patient', choice: false, url: undefined },
      { name: 'name', choice: false, url: undefined },
      { name: 'family', choice: false, url: undefined },
    ]);
    expect(parsePath('Observation.value[x]')?.[1]).toEqual({ name: 'value', choice: true, url: undefined });
    expect(
      parsePath(
        'Patient.extension(http://hl7.org/fhir/us/core/StructureDefinition/us-core-race).extension(ombCategory)',
      ),
    ).toEqual([
      { name: 'Patient', choice: false, url: undefined },
      { name: 'extension', choice: false, url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race' },
      { name: 'extension', choice: false, url: 'ombCategory' },
    ]);
  });

  it.each([
    ['Patient..name'],
    ['Patient.name['],
    ['Patient.extension(http://x'],
    ['Patient.extension)x('],
    ['Patient.value[x](u)'],
    [''],
    ['Patient.name[0]'],
  ])('cannot read %j', (p) => {
    expect(parsePath(p)).toBeUndefined();
  });
});
