// The error-code registry (src/wire/errors.ts) and its documentation (docs/errors.md) stay in step: every code has
// a `## E_…` section saying what it means, where it arises, its path, an example and what to do, and every
// such section is a code (as fastify's test/internals/errors.test.js does for its registry). BrokerError's
// wire shape carries code, message and path only.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BrokerError, ERROR_CODES, isBrokerError, isBrokerErrorCode } from '../../src/wire/errors.js';

const DOC = readFileSync(fileURLToPath(new URL('../../docs/errors.md', import.meta.url)), 'utf8');
const SOURCE = readFileSync(fileURLToPath(new URL('../../src/wire/errors.ts', import.meta.url)), 'utf8');
const CODES = Object.keys(ERROR_CODES);

/** `## E_…` headings, in order (any level-2 heading that starts with E_, well-formed or not). */
const HEADINGS = [...DOC.matchAll(/^## (E_\S*)\s*$/gm)].map((m) => m[1] ?? '');

/** The text of the section under `## <code>`, up to the next level-2 heading. */
function section(code: string): string {
  const start = DOC.indexOf(`\n## ${code}\n`);
  if (start < 0) return '';
  const rest = DOC.slice(start + code.length + 5);
  const end = rest.search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end);
}

describe('ERROR_CODES', () => {
  it('are E_ + upper-case words, each with a one-line description', () => {
    expect(CODES.length).toBeGreaterThan(0);
    for (const code of CODES) {
      expect(code).toMatch(/^E_[A-Z_]+$/);
      const description = ERROR_CODES[code as keyof typeof ERROR_CODES];
      expect(description.length, code).toBeGreaterThan(10);
      expect(description, code).not.toContain('\n');
    }
  });

  it('are declared once each in src/wire/errors.ts (no key repeated, which JS would silently collapse)', () => {
    const declared = [...SOURCE.matchAll(/^ {2}(E_[A-Z_]+):/gm)].map((m) => m[1]);
    expect(declared).toEqual(CODES);
    expect(new Set(declared).size).toBe(declared.length);
  });

  it('isBrokerErrorCode accepts exactly the codes (not inherited property names)', () => {
    for (const code of CODES) expect(isBrokerErrorCode(code)).toBe(true);
    for (const other of ['E_NOPE', 'e_json_malformed', 'toString', 'constructor', '__proto__', '', 42, undefined])
      expect(isBrokerErrorCode(other)).toBe(false);
  });
});

describe('docs/errors.md', () => {
  it('documents every code as a `## E_…` heading', () => {
    const missing = CODES.filter((c) => !HEADINGS.includes(c));
    expect(missing).toEqual([]);
  });

  it('has a `## E_…` heading only for codes, each once', () => {
    const unknown = HEADINGS.filter((h) => !CODES.includes(h));
    expect(unknown).toEqual([]);
    expect(new Set(HEADINGS).size).toBe(HEADINGS.length);
  });

  it('lists the codes in the order of src/wire/errors.ts', () => {
    expect(HEADINGS).toEqual(CODES);
  });

  it.each(CODES)('%s: states the registry description, meaning, origin, path, an example and what to do', (code) => {
    const text = section(code);
    expect(text).toContain(ERROR_CODES[code as keyof typeof ERROR_CODES]);
    for (const label of ['**Means:**', '**Arises:**', '**Path:**', '**Example:**', '**What to do:**'])
      expect(text, `${code} ${label}`).toContain(label);
    expect(text, `${code}: the example shows the code`).toMatch(new RegExp(`\\*\\*Example:\\*\\*[\\s\\S]*${code}`));
  });
});

describe('BrokerError', () => {
  const secret = 'Quillfeather 555-0142-7731';

  it('toJSON carries code, message and path, never the cause or a stack', () => {
    const cause = new Error(`parser choked on ${secret}`);
    const e = new BrokerError('E_FHIR_INVALID', 'Patient.birthDate: not a valid FHIR date', {
      path: 'Patient.birthDate',
      cause,
    });
    expect(e.cause).toBe(cause);
    expect(e.toJSON()).toEqual({
      code: 'E_FHIR_INVALID',
      message: 'Patient.birthDate: not a valid FHIR date',
      path: 'Patient.birthDate',
    });
    const wire = JSON.stringify(e);
    expect(JSON.parse(wire)).toEqual(e.toJSON());
    expect(wire).not.toContain(secret);
    expect(wire).not.toContain('cause');
    expect(wire).not.toContain('stack');
    expect(wire).not.toContain('errors.test');
  });

  it('toJSON without a path has no path key', () => {
    const e = new BrokerError('E_JSON_MALFORMED', 'input is not well-formed JSON');
    expect(Object.keys(e.toJSON()).sort()).toEqual(['code', 'message']);
    expect(e.path).toBeUndefined();
  });

  it('is an Error named BrokerError that isBrokerError recognises (and nothing else)', () => {
    const e = new BrokerError('E_REPLAY', 'a message with this id was already received', { path: 'id' });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('BrokerError');
    expect(isBrokerError(e)).toBe(true);
    expect(isBrokerError(Object.assign(new Error('x'), { code: 'E_REPLAY' }))).toBe(false);
    expect(isBrokerError({ code: 'E_REPLAY', message: 'x' })).toBe(false);
  });
});
