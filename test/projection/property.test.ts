// Property: whatever the allow-list (and drops, and a value filter on telecom), nothing outside it leaks. The FHIR path → JSON path mapping below is
// written by hand from the FHIR R4 spec, independently of src/projection.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isBrokerError } from '../../src/wire/errors.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import type { Json } from './fixtures.js';
import { HAVE_EXAMPLES, KEY_A, SKIP_NOTE, deepFreeze, hasEmpty, hl7, profile, syntheaResources } from './fixtures.js';

const RACE = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race';
const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const DAR = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';

/** FHIR path → the JSON paths (no indices; extensions as `extension(url)`) it allows. */
const POOL: Record<string, string[]> = {
  'Patient.id': ['id'],
  'Patient.meta.lastUpdated': ['meta.lastUpdated', 'meta._lastUpdated'],
  'Patient.meta.tag': ['meta.tag'],
  'Patient.text': ['text'],
  'Patient.identifier': ['identifier'],
  'Patient.identifier.value': ['identifier.value', 'identifier._value'],
  'Patient.identifier.system': ['identifier.system', 'identifier._system'],
  'Patient.active': ['active', '_active'],
  'Patient.name': ['name'],
  'Patient.name.family': ['name.family', 'name._family'],
  'Patient.name.given': ['name.given', 'name._given'],
  'Patient.telecom': ['telecom'],
  'Patient.telecom.value': ['telecom.value', 'telecom._value'],
  'Patient.gender': ['gender', '_gender'],
  'Patient.birthDate': ['birthDate', '_birthDate'],
  'Patient.deceased[x]': ['deceasedBoolean', '_deceasedBoolean', 'deceasedDateTime', '_deceasedDateTime'],
  'Patient.deceasedDateTime': ['deceasedDateTime', '_deceasedDateTime'],
  'Patient.address': ['address'],
  'Patient.address.city': ['address.city', 'address._city'],
  'Patient.address.postalCode': ['address.postalCode', 'address._postalCode'],
  'Patient.address.line': ['address.line', 'address._line'],
  'Patient.address.extension': ['address.extension'],
  'Patient.maritalStatus': ['maritalStatus'],
  'Patient.maritalStatus.coding.code': ['maritalStatus.coding.code', 'maritalStatus.coding._code'],
  'Patient.multipleBirth[x]': [
    'multipleBirthBoolean',
    '_multipleBirthBoolean',
    'multipleBirthInteger',
    '_multipleBirthInteger',
  ],
  'Patient.communication.language': ['communication.language'],
  'Patient.extension': ['extension'],
  [`Patient.extension(${RACE})`]: [`extension(${RACE})`],
  [`Patient.extension(${BIRTH_PLACE}).valueAddress.city`]: [
    `extension(${BIRTH_PLACE}).valueAddress.city`,
    `extension(${BIRTH_PLACE}).valueAddress._city`,
  ],
  'Patient.modifierExtension': ['modifierExtension'],
  'Patient.contact.name.family': ['contact.name.family', 'contact.name._family'],
  'Patient.contact.name.given': ['contact.name.given', 'contact.name._given'],
  'Patient.contact.telecom': ['contact.telecom'],
  'Patient.generalPractitioner': ['generalPractitioner'],
  'Patient.managingOrganization.display': ['managingOrganization.display', 'managingOrganization._display'],
  'Patient.photo': ['photo'],
  'Patient.link': ['link'],
};
const PATHS = Object.keys(POOL);

/** Every leaf as [json path, value]. */
function leaves(v: unknown, path: string, out: [string, unknown][]): [string, unknown][] {
  if (Array.isArray(v)) {
    for (const item of v) if (item !== null) leaves(item, path, out);
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, c] of Object.entries(v)) {
      const base = path === '' ? k : `${path}.${k}`;
      if ((k === 'extension' || k === 'modifierExtension') && Array.isArray(c)) {
        for (const e of c) leaves(e, `${base}(${String((e as Json)['url'])})`, out);
      } else {
        leaves(c, base, out);
      }
    }
  } else {
    out.push([path, v]);
  }
  return out;
}

function under(leaf: string, prefix: string): boolean {
  return leaf === prefix || leaf.startsWith(prefix + '.') || leaf.startsWith(prefix + '(');
}

// `id`: every copy has one, the input's or the subscriber's keyed pseudonym of it (compile.test.ts checks which).
const ALWAYS = ['resourceType', 'id', 'meta.profile', 'meta.security'];
const MARK = new RegExp(`^_?[A-Za-z]+\\.extension\\(${DAR.replace(/[./]/g, '\\$&')}\\)\\.(url|valueCode)$`);

describe.skipIf(!HAVE_EXAMPLES)(`nothing outside the allow-list leaks (fast-check)${SKIP_NOTE}`, () => {
  const inputs = HAVE_EXAMPLES
    ? [
        ...syntheaResources().filter((r) => r['resourceType'] === 'Patient'),
        ...[
          'patient-example.json',
          'json-edge-cases.json',
          'patient-example-b.json',
          'patient-example-animal.json',
          'patient-example-f001-pieter.json',
        ].map(hl7),
      ].map((r) => deepFreeze(r))
    : [];
  const ctx = { pseudonymize: pseudonymizer(KEY_A) };

  it('every output leaf is at an allowed path, an always-kept path, or a masked mark; drops never appear', () => {
    fc.assert(
      fc.property(
        fc.subarray(PATHS, { minLength: 0, maxLength: 8 }),
        fc.subarray(PATHS, { minLength: 0, maxLength: 3 }),
        fc.boolean(),
        fc.nat({ max: inputs.length - 1 }),
        fc.option(fc.subarray(['phone', 'email', 'fax', 'sms'], { minLength: 1 }), { nil: undefined }),
        (allow, drops, markMasked, which, systems) => {
          const input = inputs[which] as Json;
          const transforms = Object.fromEntries(drops.map((d) => [d, 'drop' as const]));
          const where = systems === undefined ? {} : { 'Patient.telecom': { system: systems } };
          let out: Json;
          try {
            out = compileProfile(profile('Patient', allow, { markMasked, transforms, where }))(input, ctx);
          } catch (e) {
            // Only a withheld modifierExtension may stop a projection.
            expect(isBrokerError(e) && e.code === 'E_MODIFIER_WITHHELD').toBe(true);
            expect(input['modifierExtension']).toBeDefined();
            expect(allow.includes('Patient.modifierExtension') && !drops.includes('Patient.modifierExtension')).toBe(
              false,
            );
            return;
          }
          const allowed = allow.flatMap((p) => POOL[p] ?? []);
          const dropped = drops.flatMap((p) => POOL[p] ?? []);
          for (const [leaf, value] of leaves(out, '', [])) {
            if (ALWAYS.some((a) => under(leaf, a))) continue;
            if (markMasked && MARK.test(leaf)) {
              expect(value === DAR || value === 'masked').toBe(true);
              continue;
            }
            // An Extension's url travels with anything kept inside that extension.
            const extUrl = /^(.*\))\.url$/.exec(leaf)?.[1];
            const ok = allowed.some(
              (a) =>
                under(leaf, a) ||
                (extUrl !== undefined && under(a, extUrl)) ||
                (extUrl !== undefined && under(extUrl, a)),
            );
            expect(ok, `${leaf} is not allowed by ${JSON.stringify(allow)}`).toBe(true);
            expect(
              dropped.some((d) => under(leaf, d) || (extUrl !== undefined && under(extUrl, d))),
              `${leaf} was dropped`,
            ).toBe(false);
          }
          expect(out).not.toHaveProperty('contained');
          expect(hasEmpty(out)).toBe(false);
          // A value filter on telecom: no more items than the input has with an allowed system, none with another one.
          if (
            systems !== undefined &&
            Array.isArray(out['telecom']) &&
            (out['telecom'] as Json[])[0]?.['extension'] === undefined
          ) {
            const passing = (input['telecom'] as Json[]).filter(
              (t) => typeof t['system'] === 'string' && systems.includes(t['system']),
            );
            expect((out['telecom'] as Json[]).length).toBeLessThanOrEqual(passing.length);
            for (const t of out['telecom'] as Json[]) if ('system' in t) expect(systems).toContain(t['system']);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
