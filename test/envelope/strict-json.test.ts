// Envelopes are strict JSON (docs/wire-format.md "Numbers and duplicate members"): a member name that repeats with
// another value is refused before the signature is checked (E_ENVELOPE_INVALID naming the member, never its value),
// so no two readers can see different PHI under one valid signature; number leaves open as the lexeme sealed.
import { beforeAll, describe, expect, it } from 'vitest';
import { initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, parseEnvelope, verifySignedEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { signDetached } from '../../src/crypto/sign.js';
import { toBase64url } from '../../src/crypto/base64url.js';
import { openDelivery, verifyDelivery } from '../../src/sdk/delivery.js';
import { BrokerError } from '../../src/wire/errors.js';
import { parseJsonText, stringifyJson } from '../../src/wire/json.js';
import { makeParties, type Parties } from './parties.js';

let p: Parties;
beforeAll(async () => {
  await initCrypto();
  p = makeParties('strict-json');
});

const utf8 = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

function sealedText(resource: unknown, iss: 'registration' | 'broker' = 'registration', to = 'broker'): string {
  const from = iss === 'broker' ? p.rings.broker : p.rings.registration;
  const s = sealEnvelope({
    id: 'sj-1',
    iss,
    iat: 1_700_000_000_000,
    typ: 'Observation',
    resource,
    signer: p.keys[iss].sign,
    recipients: [{ id: to, kek: from.kekFor(`${to}:enc:1`) }],
    ...(iss === 'broker'
      ? {
          prov: {
            src: 'registration',
            mid: 'sj-0',
            hash: 'A'.repeat(43),
            profile: 'http://example.org/p',
            purpose: 'TREAT',
            at: 1_700_000_000_000,
          },
        }
      : {}),
  });
  return utf8(s.bytes);
}

/** The same envelope text with `member` written a second time, right after the first, carrying `other`. */
function duplicated(text: string, member: string, other: string): string {
  const at = text.indexOf(`"${member}":`);
  if (at < 0) throw new Error(`no ${member}`);
  return `${text.slice(0, at)}"${member}":${other},${text.slice(at)}`;
}

function thrown(f: () => unknown): BrokerError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError);
    return e as BrokerError;
  }
  throw new Error('expected a BrokerError');
}

const OBS = {
  resourceType: 'Observation',
  id: 'o1',
  status: 'final',
  code: { text: 'glucose' },
  valueQuantity: { value: 6.3, unit: 'mmol/l' },
};

describe('duplicate members in an envelope', () => {
  it.each([
    ['body', '{"resourceType":"Observation","id":"Zebulon"}', 'body'],
    ['iat', '1700000000001', 'iat'],
    ['to', '"billing"', 'keys[0].to'],
    ['status', '"Quillfeather"', 'body.status'],
  ])('a second %s (%s) → E_ENVELOPE_INVALID at %s, naming no value', (member, other, path) => {
    const text = duplicated(sealedText(OBS), member, other);
    const err = thrown(() => parseEnvelope(bytes(text)));
    expect({ code: err.code, path: err.path }).toStrictEqual({ code: 'E_ENVELOPE_INVALID', path });
    expect(err.message).toBe(
      `envelope field ${path}: expected one member of this name (duplicate member, RFC 7493 §2.3)`,
    );
    expect(err.message).not.toMatch(/Zebulon|Quillfeather|billing|1700000000001/);
  });

  it('is refused even when the bytes are signed by the issuer (the parse comes first)', () => {
    const text = duplicated(sealedText(OBS), 'body', '{"resourceType":"Observation","id":"x"}');
    const sig = toBase64url(signDetached(bytes(text), p.keys.registration.sign.secretKey));
    const err = thrown(() => verifySignedEnvelope(bytes(text), sig, p.rings.broker));
    expect(err.code).toBe('E_ENVELOPE_INVALID');
  });

  it('the SDK refuses a broker-signed delivery with a duplicate member (E_ENVELOPE_INVALID, never handed on)', () => {
    const good = sealedText(OBS, 'broker', 'registration');
    const text = duplicated(good, 'body', '{"resourceType":"Observation","id":"x"}');
    const sig = toBase64url(signDetached(bytes(text), p.keys.broker.sign.secretKey));
    const err = thrown(() => verifyDelivery(bytes(text), sig, p.rings.registration, new Set(['broker:sig:1'])));
    expect({ code: err.code, path: err.path }).toStrictEqual({ code: 'E_ENVELOPE_INVALID', path: 'body' });
    // The same delivery without the duplicate verifies and opens: the refusal is the duplicate's alone.
    const okSig = toBase64url(signDetached(bytes(good), p.keys.broker.sign.secretKey));
    const env = verifyDelivery(bytes(good), okSig, p.rings.registration, new Set(['broker:sig:1']));
    expect(openDelivery(env, 'registration', p.rings.registration).resource).toMatchObject(OBS);
  });
});

describe('number leaves keep their lexeme through seal → open → seal → open', () => {
  it.each(['6.30', '12345678901234567890', '-0', '1.0e2', '1.0'])('%s', (lexeme) => {
    const parsed = parseJsonText(
      `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"t"},"valueQuantity":{"value":${lexeme}}}`,
    );
    if (!('value' in parsed)) throw new Error('fixture is JSON');
    const first = openEnvelope(parseEnvelope(bytes(sealedText(parsed.value))), 'broker', (id) =>
      p.rings.broker.kekForId(id),
    );
    expect(stringifyJson(first)).toContain(`"value":${lexeme}}`);
    const env = parseEnvelope(bytes(sealedText(first, 'broker', 'registration')));
    const delivered = openDelivery(env, 'registration', p.rings.registration);
    expect(delivered.resourceJson).toContain(`"value":${lexeme}}`);
    expect((delivered.resource as { valueQuantity: { value: number } }).valueQuantity.value).toBe(Number(lexeme));
  });
});
