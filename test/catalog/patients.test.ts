// The catalog's canonical patient matching rule (`patients:` in a subjects file): defaults, both forms, and
// every mistake reported with its file, path and line; the rule is part of the catalog hash.
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import { catalogFiles } from './fixtures.js';

function compile(patients: string | null) {
  return compileCatalog(catalogFiles(patients === null ? {} : { 'subjects/patients.yaml': patients }));
}

describe('patients: the canonical matching rule', () => {
  it('defaults to match by reference, accepting unresolved patients, when no file declares it', () => {
    expect(compile(null).catalog?.patients).toEqual({ match: 'reference', unresolved: 'accept' });
  });

  it('compiles an identifier rule and a reject policy, and changes the catalog hash', () => {
    const r = compile(
      'patients:\n  match: identifier\n  system: http://hospital.example.org/mrn\n  unresolved: reject\n',
    );
    expect(r.issues).toEqual([]);
    expect(r.catalog?.patients).toEqual({
      match: 'identifier',
      system: 'http://hospital.example.org/mrn',
      unresolved: 'reject',
    });
    expect(r.catalog?.hash).not.toBe(compile(null).catalog?.hash);
  });

  it('names the file, path and line of each mistake', () => {
    expect(compile('patients:\n  match: identifier\n').issues).toEqual([
      {
        file: 'subjects/patients.yaml',
        path: 'patients.system',
        message: "missing: match 'identifier' needs the identifier system (a URI, e.g. an MRN system)",
        line: 2,
      },
    ]);
    expect(compile('patients:\n  match: reference\n  system: urn:x\n').issues).toEqual([
      {
        file: 'subjects/patients.yaml',
        path: 'patients.system',
        message: "only with match 'identifier' (match 'reference' uses Patient/<id>)",
        line: 3,
      },
    ]);
    expect(
      compile('patients:\n  match: mrn\n  unresolved: drop\n').issues.map((i) => [i.file, i.path, i.line]),
    ).toEqual([
      ['subjects/patients.yaml', 'patients.match', 2],
      ['subjects/patients.yaml', 'patients.unresolved', 3],
    ]);
    expect(compile('patients:\n  match: identifier\n  system: "a|b"\n').issues[0]).toMatchObject({
      path: 'patients.system',
      message: expect.stringContaining("without '|'") as unknown,
    });
    expect(compile('patients:\n  matching: reference\n').issues[0]).toMatchObject({
      path: 'patients',
      message: "unknown key 'matching'",
    });
  });

  it('refuses a second declaration', () => {
    const r = compileCatalog(
      catalogFiles({
        'subjects/patients.yaml': 'patients: { match: reference }\n',
        'subjects/z-more.yaml': 'patients: { match: reference }\n',
      }),
    );
    expect(r.issues).toEqual([
      {
        file: 'subjects/z-more.yaml',
        path: 'patients',
        message: 'a second patients declaration (first in subjects/patients.yaml; expected exactly one)',
        line: 1,
      },
    ]);
  });
});
