// Errors never echo a JSON key a sender wrote unless it looks like a FHIR element name (STYLE.md habit 10): the AAD
// path binds every key exactly, but the path in an E_DECRYPT / E_ENVELOPE_INVALID message and its `path` show any
// other key as `[?]` (src/envelope/aad.ts shownPath over src/fhir/json-path.ts formatPath). Keys below are synthetic
// names standing in for PHI a sender put where an element name belongs.
import { beforeAll, describe, expect, it } from 'vitest';
import { fixedRandom } from '../../src/crypto/random.js';
import { sealBlobBase64url } from '../../src/crypto/aead.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { leafAad, shownPath } from '../../src/envelope/aad.js';
import { BrokerError } from '../../src/wire/errors.js';
import { openEnvelope, parseEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { makeParties, streamRandom, type Parties } from './parties.js';

let p: Parties;
beforeAll(async () => {
  await initCrypto();
  p = makeParties();
});

const NAMES = ['Zebulon', 'Quillfeather', 'Ottoline', '1977'];

function seal(
  resource: Record<string, unknown>,
  random = streamRandom('ep'),
): Record<string, unknown> & { body: Record<string, unknown> } {
  const s = sealEnvelope({
    id: 'ep-1',
    iss: 'registration',
    iat: 1,
    typ: resource['resourceType'] as string,
    resource,
    random,
    signer: p.keys.registration.sign,
    recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
  });
  return JSON.parse(Buffer.from(s.bytes).toString('utf8')) as Record<string, unknown> & {
    body: Record<string, unknown>;
  };
}

function openError(env: unknown): BrokerError {
  try {
    openEnvelope(parseEnvelope(Buffer.from(JSON.stringify(env), 'utf8')), 'broker', (id) =>
      p.rings.broker.kekForId(id),
    );
  } catch (e) {
    if (e instanceof BrokerError) return e;
    throw e;
  }
  throw new Error('expected a BrokerError');
}

/** Nothing the error carries (message, path, wire form, cause chain) names the planted key. */
function expectNoNames(e: unknown): void {
  const seen: string[] = [];
  for (let c: unknown = e; c instanceof Error; c = c.cause)
    seen.push(c.message, String((c as { path?: unknown }).path), JSON.stringify(c));
  for (const name of NAMES) expect(seen.join('\n')).not.toContain(name);
}

describe('shownPath: AAD path → path fit for an error', () => {
  it.each([
    ['Patient.name[0].given[1]', 'Patient.name[0].given[1]'],
    ['Patient._given[0]', 'Patient._given[0]'],
    ['Patient["Zebulon Quillfeather"]', 'Patient.[?]'],
    ['Patient.name[0]["Quillfeather, Zebulon"].x', 'Patient.name[0].[?].x'],
    ['Basic["a\\"]b"][2].code', 'Basic.[?][2].code'],
    ['Basic["a.b"]', 'Basic.[?]'],
    ['Basic.pat-zz-0001', 'Basic.[?]'],
    ['Basic.$x', 'Basic.[?]'],
    ['Basic._', 'Basic.[?]'],
    [`Basic.${'a'.repeat(64)}`, `Basic.${'a'.repeat(64)}`],
    [`Basic.${'a'.repeat(65)}`, 'Basic.[?]'],
    ['Patient', 'Patient'],
    ['Patient]Zebulon', '[?]'],
    ['Patient.name]Zebulon', 'Patient.name.[?]'],
  ])('%s → %s', (aad, shown) => {
    expect(shownPath(aad)).toBe(shown);
  });
});

describe('opening: E_DECRYPT and E_ENVELOPE_INVALID name no sender key', () => {
  it('a tampered leaf under a PHI-looking key: E_DECRYPT at Patient.[?]', () => {
    const env = seal({ resourceType: 'Patient', 'Zebulon Quillfeather': 'x' });
    const leaf = env.body['Zebulon Quillfeather'] as string;
    env.body['Zebulon Quillfeather'] = (leaf[0] === 'A' ? 'B' : 'A') + leaf.slice(1);
    const e = openError(env);
    expect([e.code, e.path, e.message]).toStrictEqual([
      'E_DECRYPT',
      'Patient.[?]',
      'Patient.[?] could not be decrypted or authenticated',
    ]);
    expectNoNames(e);
  });

  it('a leaf that is not base64url under a nested PHI-looking key: E_DECRYPT at Patient.name[0].[?][1]', () => {
    const env = seal({ resourceType: 'Patient', name: [{ 'Ottoline-1977': ['a', 'b'] }] });
    (env.body['name'] as Record<string, string[]>[])[0]!['Ottoline-1977']![1] = '!!';
    const e = openError(env);
    expect([e.code, e.path, e.message]).toStrictEqual([
      'E_DECRYPT',
      'Patient.name[0].[?][1]',
      'Patient.name[0].[?][1] could not be decrypted or authenticated',
    ]);
    expectNoNames(e);
  });

  it('a non-string where a sealed leaf belongs under a PHI-looking key: E_ENVELOPE_INVALID at Patient.[?]', () => {
    const env = seal({ resourceType: 'Patient', 'Quillfeather, Zebulon (1977)': 'x' });
    env.body['Quillfeather, Zebulon (1977)'] = 5;
    const e = openError(env);
    expect([e.code, e.path, e.message]).toStrictEqual([
      'E_ENVELOPE_INVALID',
      'Patient.[?]',
      'envelope body at Patient.[?]: expected a sealed leaf (string), object or array',
    ]);
    expectNoNames(e);
  });

  it('a well-sealed leaf holding an object under a PHI-looking key: E_ENVELOPE_INVALID at Patient.[?] (AAD path stays exact)', () => {
    const rand = streamRandom('ep-forge').call(null, 4096);
    const env = seal({ resourceType: 'Patient', 'Zebulon Quillfeather': 'x' }, fixedRandom(rand));
    // sealed under the exact AAD path: it authenticates, so the refusal is the leaf-type rule
    env.body['Zebulon Quillfeather'] = sealBlobBase64url(
      rand.slice(0, 32),
      Buffer.from('{"a":1}'),
      leafAad('ep-1', 'Patient["Zebulon Quillfeather"]', env['dk'] as string),
      streamRandom('n'),
    );
    const e = openError(env);
    expect([e.code, e.path, e.message]).toStrictEqual([
      'E_ENVELOPE_INVALID',
      'Patient.[?]',
      'envelope body at Patient.[?]: expected a sealed JSON leaf, not an object or array',
    ]);
    expectNoNames(e);
  });

  it('an element-name key is still shown (the check above can fail)', () => {
    const env = seal({ resourceType: 'Patient', birthDate: '1977-03-14' });
    env.body['birthDate'] = 'AAAA';
    const e = openError(env);
    expect([e.code, e.path]).toStrictEqual(['E_DECRYPT', 'Patient.birthDate']);
  });
});

describe('parsing and sealing name no sender key either', () => {
  it('an unknown envelope member with a PHI-looking name: E_ENVELOPE_INVALID at [?] / keys[0].[?] / prov.[?]', () => {
    const base = seal({ resourceType: 'Patient' });
    const cases: [(e: Record<string, unknown>) => void, string][] = [
      [(e) => (e['Zebulon Quillfeather'] = 1), '[?]'],
      [(e) => ((e['keys'] as Record<string, unknown>[])[0]!['Ottoline 1977'] = 1), 'keys[0].[?]'],
      [
        (e) => (e['prov'] = { src: 'registration', mid: 'm', hash: 'A'.repeat(43), at: 1, 'Quillfeather-Z': 1 }),
        'prov.[?]',
      ],
      [(e) => (e['extra'] = 1), 'extra'],
    ];
    for (const [change, path] of cases) {
      const env = structuredClone(base);
      change(env);
      let caught: unknown;
      try {
        parseEnvelope(Buffer.from(JSON.stringify(env), 'utf8'));
      } catch (e) {
        caught = e;
      }
      expect(caught).toMatchObject({
        code: 'E_ENVELOPE_INVALID',
        path,
        message: `envelope field ${path}: expected no such field`,
      });
      expectNoNames(caught);
    }
  });

  it("a value that is not JSON under a PHI-looking key: the sealer's TypeError names Patient.[?][0]", () => {
    const f = () => seal({ resourceType: 'Patient', 'Zebulon Quillfeather': [undefined] });
    expect(f).toThrow(
      new TypeError(
        'sealEnvelope: the value at Patient.[?][0] is not JSON (undefined, non-finite number, bigint, function or symbol)',
      ),
    );
  });
});
