// Property: free text or an extension planted anywhere in a real Synthea resource never appears in its projection
// through any shipped de-identified profile (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)) — unless the profile names that
// exact element on purpose. Plant sites come from the FHIR R4 element index (every object of a known type can take an
// extension, every present primitive a `_x` extension, every string/markdown child a value), not from src/projection.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import type { ProfileDef } from '../../src/catalog/types.js';
import { choiceJsonName, fhirElements, isPrimitiveType } from '../../src/fhir/elements.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import type { Json } from './fixtures.js';
import { HAVE_EXAMPLES, KEY_A, SHIPPED, SKIP_NOTE, syntheaResources } from './fixtures.js';

const MARK = 'PHIPLANT';
const EXT = 'http://example.org/fhir/StructureDefinition/planted';

interface Site {
  /** FHIR path without indices (`Observation.component.code.text`): compared with the profile's allow list. */
  readonly path: string;
  /** Puts `text` into the (cloned) resource. */
  plant(res: Json, text: string): void;
}

/** The type of JSON property `key` of an element of `type`, from the element index (undefined: not an element). */
function childType(type: string, key: string): { t: string; repeats: boolean } | undefined {
  const defs = fhirElements().types[type];
  if (defs === undefined) return undefined;
  const d = Object.hasOwn(defs, key) ? defs[key] : undefined;
  if (d !== undefined && d.x !== 1 && d.t.length === 1 && d.t[0] !== undefined)
    return { t: d.t[0], repeats: d.m === 1 };
  for (const [base, e] of Object.entries(defs)) {
    if (e.x !== 1) continue;
    for (const t of e.t) if (choiceJsonName(base, t) === key) return { t, repeats: e.m === 1 };
  }
  return undefined;
}

/** Every plant site of a resource: walks the JSON along the element index; `at` finds the object again in a clone. */
function sites(res: Json): Site[] {
  const out: Site[] = [];
  const walk = (obj: Json, type: string, path: string, at: (r: Json) => Json): void => {
    const defs = fhirElements().types[type];
    if (defs === undefined) return;
    if (Object.hasOwn(defs, 'extension')) {
      out.push({
        path: `${path}.extension(${EXT})`,
        plant: (r, s) => void ((at(r)['extension'] ??= []) as Json[]).push({ url: EXT, valueString: s }),
      });
    }
    if (defs['text']?.t[0] === 'Narrative') {
      out.push({
        path: `${path}.text`,
        plant: (r, s) =>
          void (at(r)['text'] = { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${s}</div>` }),
      });
    }
    for (const [name, d] of Object.entries(defs)) {
      // A string child, present or not (a choice only when no other type of it is present).
      for (const t of d.t) {
        if (t !== 'string' && t !== 'markdown') continue;
        const key = d.x === 1 ? choiceJsonName(name, t) : name;
        if (
          d.x === 1 &&
          Object.keys(obj).some((k) => k !== key && childType(type, k) !== undefined && k.startsWith(name))
        )
          continue;
        out.push({ path: `${path}.${key}`, plant: (r, s) => void (at(r)[key] = d.m === 1 ? [s] : s) });
      }
    }
    for (const [key, v] of Object.entries(obj)) {
      const c = childType(type, key);
      if (c === undefined || key === 'contained') continue;
      if (isPrimitiveType(c.t)) {
        if (!Array.isArray(v))
          out.push({
            path: `${path}.${key}.extension(${EXT})`,
            plant: (r, s) => void (at(r)[`_${key}`] = { extension: [{ url: EXT, valueString: s }] }),
          });
        continue;
      }
      const items = Array.isArray(v) ? v : [v];
      items.forEach((item, i) => {
        if (typeof item !== 'object' || item === null) return;
        const get = Array.isArray(v)
          ? (r: Json): Json => (at(r)[key] as Json[])[i] as Json
          : (r: Json): Json => at(r)[key] as Json;
        walk(item as Json, c.t, `${path}.${key}`, get);
      });
    }
  };
  const type = res['resourceType'] as string;
  walk(res, type, type, (r) => r);
  return out;
}

const catalog = loadCatalog(SHIPPED);
const deid: ProfileDef[] = [...catalog.profiles.values()]
  .filter((p) => p.deidentified)
  .sort((a, b) => (a.id < b.id ? -1 : 1));
const ctx = { pseudonymize: pseudonymizer(KEY_A) };

describe.skipIf(!HAVE_EXAMPLES)(`planted free text never reaches a de-identified subscriber${SKIP_NOTE}`, () => {
  const all = HAVE_EXAMPLES ? syntheaResources() : [];
  const cases = deid
    .map((p) => ({
      p,
      project: compileProfile(p),
      named: new Set(p.allow),
      resources: all.filter((r) => r['resourceType'] === p.resourceType),
    }))
    .filter((c) => c.resources.length > 0);

  it('covers every shipped de-identified profile whose type Synthea has', () => {
    expect(cases.map((c) => c.p.id)).toEqual([
      'condition-deid',
      'diagnosticreport-deid',
      'encounter-deid',
      'immunization-deid',
      'medicationrequest-deid',
      'observation-deid',
      'procedure-deid',
    ]);
  });

  it.each(cases.map((c) => [c.p.id, c] as const))('%s', (_id, c) => {
    let planted = 0;
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.stringMatching(/^[a-z0-9 ]{1,12}$/), (ri, si, tail) => {
        const res = structuredClone(c.resources[ri % c.resources.length] as Json);
        const all = sites(res);
        const site = all[si % all.length];
        if (site === undefined || c.named.has(site.path)) return;
        const text = `${MARK} ${tail}`;
        site.plant(res, text);
        planted++;
        const out = JSON.stringify(c.project(res, ctx));
        expect(out, site.path).not.toContain(MARK);
        expect(out).not.toContain(EXT);
      }),
      { numRuns: 300, seed: 0x5afe },
    );
    expect(planted).toBeGreaterThan(200);
  });

  it('the planting reaches allowed subtrees: without de-identification the same plants do appear', () => {
    const c = cases.find((x) => x.p.id === 'observation-deid');
    if (c === undefined) throw new Error('observation-deid missing');
    const identified = compileProfile({ ...c.p, deidentified: false });
    const obs = c.resources.find((r) => Array.isArray(r['component'])) ?? c.resources[0];
    if (obs === undefined) throw new Error('no Synthea Observation');
    let leaked = 0;
    for (const site of sites(obs)) {
      const res = structuredClone(obs);
      site.plant(res, MARK);
      if (JSON.stringify(identified(res, ctx)).includes(MARK)) leaked++;
      expect(JSON.stringify(c.project(res, ctx)).includes(MARK) && !c.named.has(site.path), site.path).toBe(false);
    }
    expect(leaked).toBeGreaterThan(10);
  });
});
