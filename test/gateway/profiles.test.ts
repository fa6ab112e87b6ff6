// The partner profiles as StructureDefinitions: schema-valid R4, and a true contract for what the projection
// delivers — real HL7 and Synthea examples (plus a planted resource carrying everything) go through the projector,
// every element it delivers is allowed by the StructureDefinition and every element it drops is at max 0 (or under
// a documented value rule or the data-absent-reason mark).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import type { ElementDefinition, StructureDefinition } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/types.js';
import { choiceJsonName, fhirElements, isPrimitiveType } from '../../src/fhir/elements.js';
import {
  MASKED_INVARIANT,
  VALUE_RULE,
  partnerProfiles,
  profileStructureDefinition,
} from '../../src/gateway/profiles/structure-definition.js';
import { runExportProfiles } from '../../src/cli/catalog.js';
import { compileProfile } from '../../src/projection/compile.js';
import { DATA_ABSENT_REASON_URL } from '../../src/projection/masked.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { listExamples, readExample, HAVE_EXAMPLES, SKIP_NOTE } from '../fhir/examples.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';

const ROOT = join(import.meta.dirname, '..', '..');
const catalog: Catalog = loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });
const ctx = { pseudonymize: (v: string): string => `p${v.length}` };

type Json = Record<string, unknown>;

function exampleResources(): Json[] {
  const out: Json[] = [];
  const add = (r: unknown): void => {
    if (typeof r !== 'object' || r === null) return;
    const res = r as Json;
    if (res['resourceType'] === 'Bundle')
      for (const e of (res['entry'] as { resource?: unknown }[] | undefined) ?? []) add(e.resource);
    else out.push(res);
  };
  for (const dir of ['hl7', 'synthea'] as const) for (const f of listExamples(dir)) add(readExample(`${dir}/${f}`));
  return out;
}

/** A resource with a direct identifier planted in elements outside every partner profile (narrative, extension, telecom, contact). */
const PLANTED_SSN = '999-12-3456-PLANTED';
function planted(type: string): Json {
  const base: Json = {
    resourceType: type,
    id: 'planted-1',
    meta: { versionId: '7', lastUpdated: '2024-01-01T00:00:00Z', source: 'urn:planted', tag: [{ code: 'x' }] },
    language: 'en',
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${PLANTED_SSN}</div>` },
    extension: [
      { url: 'http://example.org/planted', valueString: PLANTED_SSN },
      {
        url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race',
        extension: [{ url: 'text', valueString: 'x' }],
      },
    ],
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN-1' }],
  };
  if (type === 'Patient')
    Object.assign(base, {
      telecom: [{ system: 'phone', value: PLANTED_SSN }],
      birthDate: '1970-02-03',
      gender: 'female',
      maritalStatus: { text: 'M' },
      contact: [{ name: { family: PLANTED_SSN } }],
    });
  return base;
}

/** Each property of a resource as its element id (`Patient.name.family`, `Observation.value[x]`), with value. */
function* elementsOf(
  value: unknown,
  typeKey: string,
  path: string,
): Generator<{ id: string; type: string; key: string; value: unknown }> {
  if (typeof value !== 'object' || value === null) return;
  const defs = fhirElements().types[typeKey] ?? {};
  for (const [key, v] of Object.entries(value as Json)) {
    if (key === 'resourceType') continue;
    const ext = key.startsWith('_');
    const name = ext ? key.slice(1) : key;
    let id: string | undefined;
    let type: string | undefined;
    const def = defs[name];
    if (def !== undefined && def.x !== 1) [id, type] = [`${path}.${name}`, def.t[0]];
    else
      for (const [base, d] of Object.entries(defs))
        if (d.x === 1)
          for (const t of d.t) if (choiceJsonName(base, t) === name) [id, type] = [`${path}.${base}[x]`, t];
    expect(id, `${path}.${key} is an R4 element`).toBeDefined();
    const t = ext ? 'Element' : (type as string);
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item === null) continue;
      yield { id: id as string, type: t, key, value: item };
      if (!isPrimitiveType(t) && t !== 'Resource') yield* elementsOf(item, t, id as string);
    }
  }
}

function isMarker(v: unknown): boolean {
  return JSON.stringify(v) === JSON.stringify({ extension: [{ url: DATA_ABSENT_REASON_URL, valueCode: 'masked' }] });
}

function ancestorsOrSelf(id: string): string[] {
  const parts = id.split('.');
  return parts.map((_, i) => parts.slice(0, i + 1).join('.'));
}

/** Delivered elements the StructureDefinition does not allow, as `<id>: why` (empty when it conforms). */
function violations(out: Json, sd: StructureDefinition): string[] {
  const byId = new Map<string, ElementDefinition>((sd.differential?.element ?? []).map((e) => [e.id as string, e]));
  const bad: string[] = [];
  const walk = (value: unknown, typeKey: string, path: string): void => {
    for (const e of elementsOf(value, typeKey, path)) {
      if (e.id.split('.').length > path.split('.').length + 1) continue; // the recursion below visits deeper ones
      const el = byId.get(e.id);
      if (ancestorsOrSelf(e.id).some((a) => byId.get(a)?.max === '0')) bad.push(`${e.id}: at max 0`);
      else if (el?.constraint?.some((c) => c.key === MASKED_INVARIANT) === true) {
        if (!isMarker(e.value) || (isPrimitiveType(e.type) && !e.key.startsWith('_')))
          bad.push(`${e.id}: withheld element delivered with a value`);
      } else if (el?.slicing?.rules === 'closed') {
        const urls = (sd.differential?.element ?? []).filter((s) => s.path === e.id && s.sliceName !== undefined);
        const url = (e.value as Json)['url'];
        if (!urls.some((s) => s.type?.[0]?.profile?.includes(url as string) === true))
          bad.push(`${e.id}: extension outside the closed slicing`);
      } else if (!isPrimitiveType(e.type) && e.type !== 'Resource') walk(e.value, e.type, e.id);
    }
  };
  walk(out, sd.type, sd.type);
  return bad;
}

/** Whether the StructureDefinition accounts for an element the projection dropped. */
function explainsDrop(
  id: string,
  type: string,
  sd: StructureDefinition,
  profileHasIdRule: boolean,
  typesOnPath: string[],
): boolean {
  const els = sd.differential?.element ?? [];
  for (const a of ancestorsOrSelf(id)) {
    const el = els.find((e) => e.id === a);
    if (el === undefined) continue;
    if (el.max === '0') return true;
    if (el.constraint?.some((c) => c.key === MASKED_INVARIANT) === true) return true;
    if (el.comment?.includes(VALUE_RULE) === true) return true;
    if (el.slicing?.rules === 'closed') return true;
  }
  return profileHasIdRule && (type === 'Identifier' || typesOnPath.includes('Identifier'));
}

/** Element ids present in a resource, with the types on the way down. */
function idsOf(res: Json): Map<string, { type: string; path: string[] }> {
  const ids = new Map<string, { type: string; path: string[] }>();
  const walk = (v: unknown, typeKey: string, path: string, types: string[]): void => {
    for (const e of elementsOf(v, typeKey, path)) {
      if (e.id.split('.').length > path.split('.').length + 1) continue;
      ids.set(e.id, { type: e.type, path: types });
      if (!isPrimitiveType(e.type) && e.type !== 'Resource') walk(e.value, e.type, e.id, [...types, e.type]);
    }
  };
  walk(res, res['resourceType'] as string, res['resourceType'] as string, []);
  return ids;
}

const profiles = partnerProfiles(catalog);
const examples = exampleResources();

describe('partner profiles as StructureDefinitions', () => {
  it('covers every profile a partner receives in the example catalog', () => {
    expect(profiles.map((p) => p.id)).toEqual(['claim-payer', 'coverage-payer', 'immunization-iis', 'patient-iis']);
  });

  for (const profile of profiles) {
    describe(profile.id, () => {
      const sd = profileStructureDefinition(profile, '2026-01-01');

      it('is a schema-valid R4 constraint on the base resource', () => {
        expect(fhirSchemaErrors(sd)).toEqual([]);
        expect(sd).toMatchObject({
          url: profile.url,
          derivation: 'constraint',
          baseDefinition: `http://hl7.org/fhir/StructureDefinition/${profile.resourceType}`,
          type: profile.resourceType,
        });
        expect(sd.differential?.element[0]?.path).toBe(profile.resourceType);
        // Every id is unique and names an element of the type (slices aside).
        const ids = (sd.differential?.element ?? []).map((e) => e.id);
        expect(new Set(ids).size).toBe(ids.length);
      });

      it('documents its identifier rule: which identifiers the partner gets, never an SSN', () => {
        const root = sd.differential?.element[0]?.comment ?? '';
        expect(root).toMatch(/an Identifier \(at any depth\) is delivered only when it matches one of \[type [A-Z]+/);
        expect(root).toContain('and none of [type SS; system http://hl7.org/fhir/sid/us-ssn]');
        // Every Identifier element the profile delivers carries the rule as well.
        const idElements = (sd.differential?.element ?? []).filter(
          (e) => /\.identifier$/.test(e.path) && e.max !== '0',
        );
        expect(idElements.length).toBeGreaterThan(0);
        for (const e of idElements) expect(e.comment, e.id).toContain('none of [type SS;');
      });

      it.skipIf(!HAVE_EXAMPLES)(
        `allows everything the projection delivers and puts what it drops at max 0${SKIP_NOTE}`,
        () => {
          const project = compileProfile(profile);
          const inputs = [
            ...examples.filter((r) => r['resourceType'] === profile.resourceType),
            planted(profile.resourceType),
          ];
          expect(inputs.length).toBeGreaterThan(1);
          let checked = 0;
          let drops = 0;
          for (const input of inputs) {
            const out = project(input, ctx);
            expect(violations(out, sd), `${String(input['id'])}`).toEqual([]);
            const kept = idsOf(out);
            for (const [id, { type, path }] of idsOf(input)) {
              if (kept.has(id)) continue;
              drops++;
              expect(
                explainsDrop(id, type, sd, profile.identifiers !== undefined, path),
                `${String(input['id'])} dropped ${id}`,
              ).toBe(true);
            }
            expect(JSON.stringify(out)).not.toContain(PLANTED_SSN);
            checked++;
          }
          expect(checked).toBe(inputs.length);
          expect(drops).toBeGreaterThan(0);
        },
      );
    });
  }

  it('a profile element outside the allow list is at max 0, and a withheld top-level element carries the masked rule', () => {
    const sd = profileStructureDefinition(
      catalog.profiles.get('patient-iis') as NonNullable<ReturnType<Catalog['profiles']['get']>>,
    );
    const el = (id: string): ElementDefinition | undefined => sd.differential?.element.find((e) => e.id === id);
    expect(el('Patient.text')?.max).toBe('0');
    expect(el('Patient.deceased[x]')?.constraint?.[0]?.key).toBe(MASKED_INVARIANT);
    expect(el('Patient.telecom')?.constraint?.[0]?.key).toBe(MASKED_INVARIANT);
    expect(el('Patient.name')).toBeUndefined(); // allowed whole, no rule of its own
    expect(el('Patient.extension')?.slicing?.rules).toBe('closed');
  });

  it('catalog export-profiles writes the same StructureDefinitions, one file per partner profile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'phib-sd-'));
    try {
      let printed = '';
      const out = new Writable({ write: (c: Buffer, _e, cb) => ((printed += c.toString()), cb()) });
      runExportProfiles(catalog, join(dir, 'out'), out);
      const files = readdirSync(join(dir, 'out')).sort();
      expect(files).toEqual(profiles.map((p) => `StructureDefinition-${p.id}.json`));
      for (const p of profiles)
        expect(JSON.parse(readFileSync(join(dir, 'out', `StructureDefinition-${p.id}.json`), 'utf8'))).toEqual(
          JSON.parse(JSON.stringify(profileStructureDefinition(p))),
        );
      expect(printed).toContain(`${profiles.length} partner profiles written`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
