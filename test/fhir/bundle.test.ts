// splitBundle: one publishable resource per Bundle entry, in-bundle urn:uuid/urn:oid references rewritten
// to <Type>/<id>, request-only entries and dangling references reported as E_BUNDLE_INVALID.
import { describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/wire/errors.js';
import { splitBundle } from '../../src/fhir/bundle.js';
import type { BundleEntryResult } from '../../src/fhir/bundle.js';
import { extractPatientRef } from '../../src/fhir/patient-ref.js';
import type { FhirResource } from '../../src/fhir/resource.js';
import { HAVE_EXAMPLES, readExample, SKIP_NOTE, stringValues } from './examples.js';

/** The Patient id inside each synthea bundle (read off the files by hand). */
const SYNTHEA_PATIENT: Record<string, string> = {
  'Alberto_Atencio_fc712d1f-5a2e-4407-9c55-a2a2bad623c2.json': '4e8ed886-fd5f-40bb-8feb-f339b04d853a',
  'Birgit_Schmeler_7e8ee10e-569b-4229-9380-62c49244902c.json': '37e97ea5-e2dc-4770-bb7d-93d02cfebb0c',
  'Brain_Erdman_ae4b94e4-cfbb-4091-828d-8ddc1c32bb6b.json': '579423cd-3384-4e7d-bf19-295a26d27524',
  'Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json': 'e4531916-b162-4f4b-90c2-ce37e132b8d4',
  'Truman_Wiegand_299750d1-6993-41a2-a16b-0d566cbcfb30.json': 'd5525459-8f3e-4e60-8ed2-5140d165db75',
};
/** Synthea resource types outside the Patient compartment. */
const NOT_ABOUT_A_PATIENT = new Set(['Organization', 'Practitioner']);

/** Every `reference` string anywhere in `json`. */
function references(json: unknown, out: string[] = []): string[] {
  if (Array.isArray(json)) for (const v of json) references(v, out);
  else if (typeof json === 'object' && json !== null) {
    for (const [k, v] of Object.entries(json)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else references(v, out);
    }
  }
  return out;
}

function okResources(results: readonly BundleEntryResult[]): FhirResource[] {
  return results.flatMap((r) => (r.ok ? [r.resource] : []));
}

describe.skipIf(!HAVE_EXAMPLES)(`splitBundle on the examples${SKIP_NOTE}`, () => {
  it.each(Object.entries(SYNTHEA_PATIENT))(
    'synthea/%s: every reference resolved, every entry linked to Patient/%s',
    (file, patientId) => {
      const bundle = readExample(`synthea/${file}`) as { entry: { resource: FhirResource }[] };
      const before = JSON.stringify(bundle);
      const results = splitBundle(bundle);
      expect(JSON.stringify(bundle)).toBe(before); // pure
      expect(results.filter((r) => !r.ok)).toEqual([]);
      const resources = okResources(results);
      expect(resources.map((r) => r.resourceType)).toEqual(bundle.entry.map((e) => e.resource.resourceType));
      expect(stringValues(resources).filter((s) => s.includes('urn:uuid:'))).toEqual([]);

      const ids = new Set(resources.map((r) => `${r.resourceType}/${String(r.id)}`));
      for (const r of resources) {
        expect(extractPatientRef(r)).toBe(NOT_ABOUT_A_PATIENT.has(r.resourceType) ? undefined : `Patient/${patientId}`);
      }
      // Every reference names an entry of the same bundle, or (`#…`) a resource contained in its own entry.
      const refs = references(resources).filter((ref) => !ref.startsWith('#'));
      expect(refs.length).toBeGreaterThan(resources.length);
      expect(refs.filter((ref) => !ids.has(ref))).toEqual([]);
    },
  );

  it('hl7/bundle-transaction.json: DELETE and GET entries are E_BUNDLE_INVALID with their entry path and original JSON', () => {
    const bundle = readExample('hl7/bundle-transaction.json') as { entry: unknown[] };
    const results = splitBundle(bundle);
    expect(results).toHaveLength(10);
    const failed = results.filter((r) => !r.ok);
    expect(failed.map((r) => [r.index, r.path, r.error?.code, r.error?.path])).toEqual([
      [5, 'Bundle.entry[5]', 'E_BUNDLE_INVALID', 'Bundle.entry[5]'],
      [6, 'Bundle.entry[6]', 'E_BUNDLE_INVALID', 'Bundle.entry[6]'],
      [8, 'Bundle.entry[8]', 'E_BUNDLE_INVALID', 'Bundle.entry[8]'],
      [9, 'Bundle.entry[9]', 'E_BUNDLE_INVALID', 'Bundle.entry[9]'],
    ]);
    for (const r of failed) {
      expect(r.entry).toBe(bundle.entry[r.index]);
      expect(r.error?.message).toBe(
        `Bundle.entry[${r.index}]: the entry has no resource (a request-only entry, e.g. DELETE or GET, cannot be published)`,
      );
    }
    // POSTed entries without id take the id of their urn:uuid fullUrl; PUT entries keep theirs.
    expect(okResources(results).map((r) => `${r.resourceType}/${String(r.id)}`)).toEqual([
      'Patient/61ebe359-bfdc-4613-8bf2-c5e300945f0a',
      'Patient/88f151c0-a954-468a-88bd-5ae15c08e059',
      'Patient/123',
      'Patient/74891afc-ed52-42a2-bcd7-f13d9b60f096',
      'Patient/123a',
      'Parameters/79378cb8-8f58-48e8-a5e8-60ac2755b674',
    ]);
  });

  it('hl7/bundle-response-medsallergies.json: nested Bundles are published whole, not split', () => {
    const bundle = readExample('hl7/bundle-response-medsallergies.json') as { entry: { resource: unknown }[] };
    const resources = okResources(splitBundle(bundle));
    expect(resources.map((r) => r.resourceType)).toEqual(['Patient', 'Bundle', 'Bundle', 'Bundle', 'Bundle']);
    for (let i = 1; i < 5; i++) expect(resources[i]).toEqual(bundle.entry[i]?.resource);
  });
});

const P_URN = 'urn:uuid:3f1c9a52-7d4e-4b8a-9c61-0e2f5d7a8b93';
const E_URN = 'urn:uuid:b27e4c10-95a3-4f6d-8e1b-6c0d2a9f3e75';

function transaction(entries: unknown[]): Record<string, unknown> {
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

describe('splitBundle on synthetic bundles', () => {
  it('rewrites references at any depth: contained resources, extensions, arrays; urn:oid too', () => {
    const bundle = transaction([
      { fullUrl: P_URN, resource: { resourceType: 'Patient', name: [{ family: 'Quillfeather' }] } },
      { fullUrl: 'urn:oid:1.2.840.99999.7', resource: { resourceType: 'Organization', id: 'org-7' } },
      {
        fullUrl: E_URN,
        resource: {
          resourceType: 'Encounter',
          subject: { reference: P_URN },
          serviceProvider: { reference: 'urn:oid:1.2.840.99999.7' },
          extension: [{ url: 'http://example.org/x', valueReference: { reference: P_URN } }],
          contained: [
            { resourceType: 'Observation', id: 'c1', subject: { reference: P_URN }, performer: [{ reference: '#c1' }] },
          ],
        },
      },
    ]);
    const before = JSON.stringify(bundle);
    const results = splitBundle(bundle);
    expect(JSON.stringify(bundle)).toBe(before);
    const [patient, org, encounter] = okResources(results);
    expect(patient).toEqual({
      resourceType: 'Patient',
      name: [{ family: 'Quillfeather' }],
      id: '3f1c9a52-7d4e-4b8a-9c61-0e2f5d7a8b93',
    });
    expect(org).toEqual({ resourceType: 'Organization', id: 'org-7' });
    expect(encounter).toEqual({
      resourceType: 'Encounter',
      subject: { reference: 'Patient/3f1c9a52-7d4e-4b8a-9c61-0e2f5d7a8b93' },
      serviceProvider: { reference: 'Organization/org-7' },
      extension: [
        { url: 'http://example.org/x', valueReference: { reference: 'Patient/3f1c9a52-7d4e-4b8a-9c61-0e2f5d7a8b93' } },
      ],
      contained: [
        {
          resourceType: 'Observation',
          id: 'c1',
          subject: { reference: 'Patient/3f1c9a52-7d4e-4b8a-9c61-0e2f5d7a8b93' },
          performer: [{ reference: '#c1' }],
        },
      ],
      id: 'b27e4c10-95a3-4f6d-8e1b-6c0d2a9f3e75',
    });
    expect(extractPatientRef(encounter as FhirResource)).toBe('Patient/3f1c9a52-7d4e-4b8a-9c61-0e2f5d7a8b93');
  });

  it('an entry whose resource has an id is referenced by that id, not by its fullUrl', () => {
    const results = splitBundle(
      transaction([
        { fullUrl: P_URN, resource: { resourceType: 'Patient', id: 'pat-42' } },
        { resource: { resourceType: 'Observation', subject: { reference: P_URN } } },
      ]),
    );
    expect(okResources(results)[1]).toEqual({ resourceType: 'Observation', subject: { reference: 'Patient/pat-42' } });
  });

  it('a reference to a urn:uuid no entry has: E_BUNDLE_INVALID at the reference, original entry returned', () => {
    const entry = {
      fullUrl: E_URN,
      resource: { resourceType: 'Encounter', subject: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000000' } },
    };
    const results = splitBundle(transaction([{ fullUrl: P_URN, resource: { resourceType: 'Patient' } }, entry]));
    const bad = results[1];
    expect(bad?.ok).toBe(false);
    expect(bad?.entry).toBe(entry);
    expect(bad?.error).toBeInstanceOf(BrokerError);
    expect([bad?.error?.code, bad?.error?.path]).toEqual([
      'E_BUNDLE_INVALID',
      'Bundle.entry[1].resource.subject.reference',
    ]);
    expect(bad?.error?.message).not.toContain('00000000');
    expect(results[0]?.ok).toBe(true);
  });

  it('a dangling reference deep inside an array and an extension names that path', () => {
    const results = splitBundle(
      transaction([
        {
          resource: {
            resourceType: 'Observation',
            id: 'o1',
            performer: [
              { reference: 'Practitioner/1' },
              { extension: [{ url: 'x', valueReference: { reference: 'urn:oid:1.2.3' } }] },
            ],
          },
        },
      ]),
    );
    expect(results[0]?.error?.path).toBe('Bundle.entry[0].resource.performer[1].extension[0].valueReference.reference');
  });

  it('a second entry with the same urn fullUrl is E_BUNDLE_INVALID at its fullUrl', () => {
    const results = splitBundle(
      transaction([
        { fullUrl: P_URN, resource: { resourceType: 'Patient', id: 'a' } },
        { fullUrl: P_URN, resource: { resourceType: 'Patient', id: 'b' } },
      ]),
    );
    expect(results.map((r) => (r.ok ? 'ok' : r.error.path))).toEqual(['ok', 'Bundle.entry[1].fullUrl']);
  });

  it('entries that are not objects or whose resource has no resourceType', () => {
    const results = splitBundle(transaction(['Quillfeather', { resource: { id: 'x' } }]));
    expect(results.map((r) => [r.ok, r.error?.path])).toEqual([
      [false, 'Bundle.entry[0]'],
      [false, 'Bundle.entry[1].resource'],
    ]);
  });

  it('a Bundle without entries splits into nothing; a non-Bundle throws E_BUNDLE_INVALID', () => {
    expect(splitBundle({ resourceType: 'Bundle', type: 'collection' })).toEqual([]);
    for (const input of [{ resourceType: 'Patient' }, null, [], 'Bundle']) {
      expect(() => splitBundle(input)).toThrow(expect.objectContaining({ code: 'E_BUNDLE_INVALID', path: 'Bundle' }));
    }
    expect(() => splitBundle({ resourceType: 'Bundle', entry: {} })).toThrow(
      expect.objectContaining({ code: 'E_BUNDLE_INVALID', path: 'Bundle.entry' }),
    );
  });

  it('a __proto__ key is copied as data, not as a prototype', () => {
    const bundle = JSON.parse(
      '{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Basic","id":"b","__proto__":{"polluted":1}}}]}',
    ) as unknown;
    const [basic] = okResources(splitBundle(bundle));
    expect(Object.getPrototypeOf(basic)).toBe(Object.prototype);
    expect(Object.keys(basic ?? {})).toEqual(['resourceType', 'id', '__proto__']);
  });
});
