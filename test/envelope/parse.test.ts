// Strict structural parse of envelopes: not JSON → E_JSON_MALFORMED; every other deviation → E_ENVELOPE_INVALID
// with the path of the failing field. Raw mode: non-JSON input sealed whole at path $raw.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, parseEnvelope, verifySignedEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { isRawPayload } from '../../src/envelope/types.js';
import { makeParties, syntheticPatient, type Parties } from './parties.js';

let p: Parties;
let good: Record<string, unknown>;
beforeAll(async () => {
  await initCrypto();
  p = makeParties();
  const s = sealEnvelope({
    id: 'msg-1',
    iss: 'registration',
    iat: 5,
    typ: 'Patient',
    resource: syntheticPatient(),
    signer: p.keys.registration.sign,
    recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
    prov: { src: 'registration', mid: 'orig-1', hash: 'h'.repeat(43), at: 4 },
  });
  good = JSON.parse(Buffer.from(s.bytes).toString('utf8')) as Record<string, unknown>;
});

const enc = (v: unknown): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(v), 'utf8'));

function parseError(bytes: Uint8Array): { code: string; path?: string; message: string } {
  try {
    parseEnvelope(bytes);
  } catch (e) {
    return e as { code: string; path?: string; message: string };
  }
  throw new Error('parsed');
}

function mutate(f: (env: Record<string, unknown>) => void): Uint8Array {
  const env = structuredClone(good);
  f(env);
  return enc(env);
}

describe('parseEnvelope', () => {
  it('accepts a sealed envelope and returns its fields', () => {
    const env = parseEnvelope(enc(good));
    expect([env.v, env.id, env.iss, env.iat, env.typ, env.kid, env.keys.length, env.prov?.mid]).toStrictEqual([
      1,
      'msg-1',
      'registration',
      5,
      'Patient',
      'registration:sig:1',
      1,
      'orig-1',
    ]);
  });

  it.each([
    ['not JSON', Buffer.from('{"v":1,')],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
    ['empty', Buffer.alloc(0)],
  ])('%s → E_JSON_MALFORMED', (_name, bytes) => {
    expect(parseError(new Uint8Array(bytes))).toMatchObject({
      code: 'E_JSON_MALFORMED',
      message: 'the message is not well-formed UTF-8 JSON',
    });
  });

  it.each<[string, (e: Record<string, unknown>) => void, string]>([
    ['an array', (e) => Object.keys(e).forEach((k) => delete e[k]), 'v'],
    ['v 2', (e) => (e['v'] = 2), 'v'],
    ['no id', (e) => delete e['id'], 'id'],
    ['id with |', (e) => (e['id'] = 'a|b'), 'id'],
    ['iss not a service id', (e) => (e['iss'] = 'Registration'), 'iss'],
    ['iat a string', (e) => (e['iat'] = '5'), 'iat'],
    ['iat fractional', (e) => (e['iat'] = 5.5), 'iat'],
    ['typ lowercase', (e) => (e['typ'] = 'patient'), 'typ'],
    ['kid an enc key', (e) => (e['kid'] = 'registration:enc:1'), 'kid'],
    ['dk empty', (e) => (e['dk'] = ''), 'dk'],
    ['keys empty', (e) => (e['keys'] = []), 'keys'],
    ['keys[0] extra field', (e) => ((e['keys'] as Record<string, unknown>[])[0]!['x'] = 1), 'keys[0].x'],
    [
      'keys[0].kek unsorted',
      (e) => ((e['keys'] as Record<string, unknown>[])[0]!['kek'] = 'registration:enc:1~broker:enc:1'),
      'keys[0].kek',
    ],
    [
      'keys[0].kek of sig keys',
      (e) => ((e['keys'] as Record<string, unknown>[])[0]!['kek'] = 'broker:sig:1~registration:sig:1'),
      'keys[0].kek',
    ],
    ['keys[0].wk short', (e) => ((e['keys'] as Record<string, unknown>[])[0]!['wk'] = 'AAAA'), 'keys[0].wk'],
    ['duplicate recipient', (e) => (e['keys'] as unknown[]).push((e['keys'] as unknown[])[0]), 'keys[1].to'],
    ['prov.hash short', (e) => ((e['prov'] as Record<string, unknown>)['hash'] = 'abc'), 'prov.hash'],
    ['prov without at', (e) => delete (e['prov'] as Record<string, unknown>)['at'], 'prov.at'],
    ['prov.purpose lowercase', (e) => ((e['prov'] as Record<string, unknown>)['purpose'] = 'treat'), 'prov.purpose'],
    ['unknown top-level field', (e) => (e['extra'] = 1), 'extra'],
    ['body not an object', (e) => (e['body'] = 'x'), 'body'],
    [
      'body of another type',
      (e) => ((e['body'] as Record<string, unknown>)['resourceType'] = 'Observation'),
      'body.resourceType',
    ],
    ['raw typ with object body', (e) => (e['typ'] = '$raw'), 'body'],
  ])('%s → E_ENVELOPE_INVALID at %s', (_name, change, path) => {
    const err = parseError(mutate(change));
    expect(err).toMatchObject({ code: 'E_ENVELOPE_INVALID', path });
    expect(err.message).toContain(`envelope field ${path}: expected`);
  });

  it('kid of another service is a signature failure (E_SIGNATURE at kid), not a shape error', () => {
    const err = parseError(mutate((e) => (e['kid'] = 'billing:sig:1')));
    expect(err).toMatchObject({ code: 'E_SIGNATURE', path: 'kid' });
  });

  it('a well-formed typ that names no R4 resource parses (the broker rejects it after verifying the signature)', () => {
    const s = sealEnvelope({
      id: 'm',
      iss: 'registration',
      iat: 1,
      typ: 'Foo',
      resource: { resourceType: 'Foo', x: 'y' },
      signer: p.keys.registration.sign,
      recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
    });
    const env = verifySignedEnvelope(s.bytes, s.sig, p.rings.broker);
    expect(env.typ).toBe('Foo');
    expect((env.body as Record<string, unknown>)['resourceType']).toBe('Foo');
    expect(openEnvelope(env, 'broker', (id) => p.rings.broker.kekForId(id))).toStrictEqual({
      resourceType: 'Foo',
      x: 'y',
    });
  });

  it('returns header fields that do not hold the envelope text, so an id kept after its message keeps only itself', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const div = `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(16_000)}</div>`;
    const s = sealEnvelope({
      id: 'message-kept-after-its-envelope-1',
      iss: 'registration',
      iat: 5,
      typ: 'Patient',
      resource: { ...syntheticPatient(), text: { status: 'generated', div } },
      signer: p.keys.registration.sign,
      recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
      prov: { src: 'registration', mid: 'original-message-of-the-kept-one', hash: 'h'.repeat(43), at: 4 },
    });
    const n = 1000;
    const kept: string[] = [];
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      const env = parseEnvelope(s.bytes);
      const key = env.keys[0]!;
      kept.push(env.id, env.iss, env.typ, env.kid, env.dk, key.to, key.kek, key.wk, env.prov!.mid, env.prov!.hash);
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    expect(kept[0]).toBe('message-kept-after-its-envelope-1');
    // Each envelope's text is over 16 KB: held by its fields, 1,000 would add over 16 MB. The 10,000 fields alone and
    // the array take about 1 MB, which the heap measures with some noise: the bound is 4 MB, a quarter of the leak.
    expect(s.bytes.byteLength).toBeGreaterThan(16_000);
    expect(grown).toBeLessThan(n * 4096);
  });
});

describe('raw mode', () => {
  it('seals arbitrary bytes whole at $raw and returns them as { raw }', () => {
    const input = new Uint8Array(Buffer.from('{"resourceType":"Patient", name: Zebulon Quillfeather', 'utf8'));
    const s = sealEnvelope({
      id: 'raw-1',
      iss: 'registration',
      iat: 1,
      typ: '$raw',
      resource: { raw: input },
      signer: p.keys.registration.sign,
      recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
    });
    expect(Buffer.from(s.bytes).includes('Quillfeather')).toBe(false);
    const env = verifySignedEnvelope(s.bytes, s.sig, p.rings.broker);
    expect(env.typ).toBe('$raw');
    const opened = openEnvelope(env, 'broker', (id) => p.rings.broker.kekForId(id));
    expect(isRawPayload(opened)).toBe(true);
    expect(Buffer.from((opened as { raw: Uint8Array }).raw).equals(Buffer.from(input))).toBe(true);
  });

  it('refuses a mismatched typ/resource as a programming error (TypeError)', () => {
    const base = {
      id: 'x',
      iss: 'registration',
      iat: 1,
      signer: p.keys.registration.sign,
      recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
    };
    expect(() => sealEnvelope({ ...base, typ: '$raw', resource: syntheticPatient() })).toThrow(TypeError);
    expect(() => sealEnvelope({ ...base, typ: 'Observation', resource: syntheticPatient() })).toThrow(
      /resource\.resourceType/,
    );
    expect(() =>
      sealEnvelope({ ...base, typ: 'Patient', resource: { resourceType: 'Patient', x: Number.NaN } }),
    ).toThrow(/Patient\.x is not JSON/);
    expect(() =>
      sealEnvelope({ ...base, signer: p.keys.billing.sign, typ: 'Patient', resource: syntheticPatient() }),
    ).toThrow(/signing key of iss/);
  });
});
