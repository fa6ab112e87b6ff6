// Every resource of the five Synthea bundles through a full and a restrictive de-identifying profile: nothing throws,
// the full profile changes nothing but meta.profile, the restrictive one keeps only what it names.
import { describe, expect, it } from 'vitest';
import type { TransformName } from '../../src/catalog/types.js';
import { fhirElements } from '../../src/fhir/elements.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import type { Json } from './fixtures.js';
import { HAVE_EXAMPLES, KEY_A, PROFILE_URL, SKIP_NOTE, hasEmpty, profile, syntheaBundles } from './fixtures.js';

describe.skipIf(!HAVE_EXAMPLES)(`Synthea bundles${SKIP_NOTE}`, () => {
  const bundles = HAVE_EXAMPLES ? syntheaBundles() : [];
  const ctx = { pseudonymize: pseudonymizer(KEY_A) };
  const full = new Map<string, ReturnType<typeof compileProfile>>();
  const restrictive = new Map<string, ReturnType<typeof compileProfile>>();
  const fullFor = (t: string): ReturnType<typeof compileProfile> => {
    let p = full.get(t);
    if (p === undefined) {
      p = compileProfile(
        profile(t, [t], { contained: { Coverage: ['Coverage'], ServiceRequest: ['ServiceRequest'] } }),
      );
      full.set(t, p);
    }
    return p;
  };
  const restrictiveFor = (t: string): ReturnType<typeof compileProfile> => {
    let p = restrictive.get(t);
    if (p === undefined) {
      // Transforms only on elements the type has (a transform whose path does not resolve withholds everything).
      const has = fhirElements().types[t] ?? {};
      const wanted: [string, TransformName][] = [
        ['subject', 'pseudonym'],
        ['patient', 'pseudonym'],
        ['effective', 'year'],
        ['birthDate', 'year'],
        ['address', 'zip3'],
      ];
      const transforms = Object.fromEntries(
        wanted
          .filter(([e]) => Object.hasOwn(has, e))
          .map(([e, tr]) => [`${t}.${e}${e === 'effective' ? '[x]' : e === 'address' ? '.postalCode' : ''}`, tr]),
      );
      p = compileProfile(
        profile(
          t,
          [
            `${t}.status`,
            `${t}.code`,
            `${t}.subject`,
            `${t}.patient`,
            `${t}.effective[x]`,
            `${t}.birthDate`,
            `${t}.address.postalCode`,
          ],
          {
            deidentified: true,
            markMasked: true,
            transforms,
          },
        ),
      );
      restrictive.set(t, p);
    }
    return p;
  };

  it.each(bundles.map((b) => [b.file, b.bundle] as const))('%s', (_file, bundle) => {
    const resources = (bundle['entry'] as { resource: Json }[]).map((e) => e.resource);
    expect(resources.length).toBeGreaterThan(50);
    for (const res of resources) {
      const t = res['resourceType'] as string;
      const before = JSON.stringify(res);
      const f = fullFor(t)(res, ctx);
      const { profile: _p, ...meta } = (res['meta'] ?? {}) as Json;
      expect(f).toEqual({ ...res, meta: { ...meta, profile: [PROFILE_URL] } });

      const r = restrictiveFor(t)(res, ctx);
      expect(JSON.stringify(res)).toBe(before);
      expect(hasEmpty(r)).toBe(false);
      for (const [k, v] of Object.entries(r)) {
        if (['resourceType', 'meta', 'status', 'code', 'birthDate'].includes(k)) continue;
        if (k === 'id') {
          expect(v).toBe(ctx.pseudonymize(res['id'] as string));
          continue;
        }
        if (k === 'subject' || k === 'patient') {
          const ref = (v as Json)['reference'] as string;
          expect(ref).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
          expect(ref).not.toBe((res[k] as Json)['reference']);
          expect(Object.keys(v as Json)).toEqual(['reference']);
        } else if (k.startsWith('effective')) {
          expect(v).toEqual(
            k === 'effectivePeriod' ? expect.objectContaining({}) : expect.stringMatching(/^[0-9]{4}$/),
          );
          if (k === 'effectivePeriod') for (const d of Object.values(v as Json)) expect(d).toMatch(/^[0-9]{4}$/);
        } else if (k === 'address') {
          // A postal code that is not a 5-digit ZIP (Synthea has `1020`, a ZIP that lost its leading 0) is withheld.
          const zips = (res['address'] as Json[])
            .map((a) => a['postalCode'] as string)
            .filter((z) => /^[0-9]{5}$/.test(z));
          const mark = {
            extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }],
          };
          expect(v).toEqual(zips.length === 0 ? [mark] : zips.map((z) => ({ postalCode: z.slice(0, 3) })));
        } else {
          // Everything else the resource had is only a data-absent-reason mark.
          const mark = Array.isArray(v) ? v[0] : v;
          expect(mark).toEqual({
            extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }],
          });
        }
      }
      if (t === 'Patient') expect(r['birthDate']).toBe((res['birthDate'] as string).slice(0, 4));
    }
  });
});
