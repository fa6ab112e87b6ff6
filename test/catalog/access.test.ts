// The catalog's right-of-access requesters (`access:` in a subjects file): default none, the compiled list, every
// mistake reported with its file, path and line; the list is part of the catalog hash only when it names anyone.
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { ROOT } from '../helpers/stack.js';
import { join } from 'node:path';
import { catalogFiles } from './fixtures.js';

function compile(access: string | null) {
  return compileCatalog(catalogFiles(access === null ? {} : { 'subjects/access.yaml': access }));
}

describe('access: who may create right-of-access requests from the SDK', () => {
  it('defaults to nobody when no file declares it, and an empty list keeps the hash', () => {
    expect(compile(null).catalog?.access).toEqual({ requesters: [] });
    const empty = compile('access:\n  requesters: []\n');
    expect(empty.issues).toEqual([]);
    expect(empty.catalog?.hash).toBe(compile(null).catalog?.hash);
  });

  it('compiles the declared requesters (sorted, frozen) and changes the catalog hash', () => {
    const r = compile('access:\n  requesters: [front-desk, clinic]\n');
    expect(r.issues).toEqual([]);
    expect(r.catalog?.access).toEqual({ requesters: ['clinic', 'front-desk'] });
    expect(Object.isFrozen(r.catalog?.access.requesters)).toBe(true);
    expect(r.catalog?.hash).not.toBe(compile(null).catalog?.hash);
    expect(compile('access:\n  requesters: [clinic]\n').catalog?.hash).not.toBe(r.catalog?.hash);
  });

  it('names the file, path and line of each mistake', () => {
    expect(compile('access:\n  requesters:\n    - clinic\n    - kiosk\n    - clinic\n    - broker\n').issues).toEqual([
      {
        file: 'subjects/access.yaml',
        path: 'access.requesters[1]',
        message: "'kiosk' is not a declared service (expected an id from services)",
        line: 4,
      },
      { file: 'subjects/access.yaml', path: 'access.requesters[2]', message: "'clinic' is listed twice", line: 5 },
      {
        file: 'subjects/access.yaml',
        path: 'access.requesters[3]',
        message: "'broker' is the broker itself, not a requesting service",
        line: 6,
      },
    ]);
    expect(compile('access:\n  requesters: [Not_An_Id]\n').issues.map((i) => [i.path, i.line])).toEqual([
      ['access.requesters[0]', 2],
    ]);
    expect(compile('access:\n  askers: [clinic]\n').issues.map((i) => [i.path, i.message])).toEqual([
      ['access', "unknown key 'askers'"],
      ['access.requesters', 'missing: expected array'],
    ]);
  });

  it('refuses a second declaration', () => {
    const r = compileCatalog(
      catalogFiles({
        'subjects/access.yaml': 'access: { requesters: [clinic] }\n',
        'subjects/z-more.yaml': 'access: { requesters: [clinic] }\n',
      }),
    );
    expect(r.issues).toEqual([
      {
        file: 'subjects/z-more.yaml',
        path: 'access',
        message: 'a second access declaration (first in subjects/access.yaml; expected exactly one)',
        line: 1,
      },
    ]);
  });

  it('the example catalog lets the patient portal, and only it, ask', () => {
    const catalog = loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });
    expect(catalog.access.requesters).toEqual(['patient-portal']);
    expect(catalog.services.get('patient-portal')).toMatchObject({ classification: 'phi', external: false });
  });
});
