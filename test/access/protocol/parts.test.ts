// An answer sent in parts (pure): split under a size, signed part by part, reassembled only when every part is
// the one asked for, signed for this answer and place, and the whole has the length and SHA-256 the signed
// manifest declared — a missing, reordered, substituted, altered or truncated part is refused with a stable code.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_PARTS,
  PartsAssembly,
  newPartsToken,
  openManifest,
  parsePartRequest,
  partRequest,
  splitAnswer,
  type AnswerPart,
  type SplitAnswer,
} from '../../../src/access/protocol/parts.js';
import { toBase64url } from '../../../src/crypto/base64url.js';
import { signDetached } from '../../../src/crypto/sign.js';
import { initCrypto } from '../../../src/crypto/sodium.js';
import { makeParties, type Parties } from '../../envelope/parties.js';

let p: Parties;
const ID = 'ar-1.billing.2.a';
const expected = { questionId: 'ar-1.billing.2', service: 'billing', maxBytes: 1_000_000 };
const answer = new Uint8Array(10_000).map((_, i) => (i * 7) % 251);

beforeAll(async () => {
  await initCrypto();
  p = makeParties('access-parts');
});

function split(bytes = answer, id = ID): SplitAnswer {
  return splitAnswer({
    id,
    service: 'billing',
    bytes,
    sig: 'c2ln',
    maxPart: 3000,
    signer: p.keys.billing.sign,
    token: '0123456789abcdef0123456789abcdef',
  });
}

function assemble(s: SplitAnswer, parts: readonly (AnswerPart | undefined)[] = s.parts): Uint8Array {
  const m = openManifest(s.manifest.bytes, s.manifest.sig, p.rings.broker, expected);
  const a = new PartsAssembly(m, p.rings.broker);
  for (let k = a.next; k !== undefined; k = a.next) {
    const part = parts[k - 1];
    if (part === undefined) break;
    a.add(k, part.data, part.place, part.sig);
  }
  return a.assemble();
}

function codeOf(f: () => unknown): { code?: string; path?: string } {
  try {
    f();
  } catch (e) {
    return e as { code: string; path: string };
  }
  return {};
}

describe('splitAnswer and reassembly', () => {
  it('splits into consecutive parts no larger than asked, each marked k/n, and reassembles the exact bytes', () => {
    const s = split();
    expect(s.parts.map((x) => [x.place, x.data.length])).toEqual([
      ['1/4', 3000],
      ['2/4', 3000],
      ['3/4', 3000],
      ['4/4', 1000],
    ]);
    expect(s.manifest.value).toMatchObject({
      v: 1,
      id: ID,
      iss: 'billing',
      kid: p.keys.billing.sign.kid,
      bytes: 10_000,
      parts: 4,
      sha256: createHash('sha256').update(answer).digest('hex'),
      sig: 'c2ln',
    });
    expect(assemble(s)).toEqual(answer);
    expect(newPartsToken()).toMatch(/^[0-9a-f]{32}$/);
    expect(parsePartRequest(partRequest(3))).toBe(3);
    for (const bad of ['', '{}', '{"part":0}', '{"part":"1"}', 'x'])
      expect(parsePartRequest(new TextEncoder().encode(bad))).toBeUndefined();
  });

  it('a missing part: E_ACCESS_PARTS naming it', () => {
    const s = split();
    expect(codeOf(() => assemble(s, [s.parts[0], s.parts[1], s.parts[2]]))).toMatchObject({
      code: 'E_ACCESS_PARTS',
      path: 'part[4]',
    });
  });

  it('a part marked as another (reordered): E_ACCESS_PARTS; moved with its bytes but not its place: E_SIGNATURE', () => {
    const s = split();
    const [a, b, c, d] = s.parts as [AnswerPart, AnswerPart, AnswerPart, AnswerPart];
    expect(codeOf(() => assemble(s, [a, c, b, d]))).toMatchObject({ code: 'E_ACCESS_PARTS', path: 'part[2]' });
    expect(codeOf(() => assemble(s, [a, { ...c, place: '2/4' }, b, d]))).toMatchObject({ code: 'E_SIGNATURE' });
  });

  it('an altered part, or one substituted from another answer of the same service: E_SIGNATURE', () => {
    const s = split();
    const altered = s.parts.map((x, i) => (i === 2 ? { ...x, data: x.data.map((v, j) => (j === 5 ? v ^ 1 : v)) } : x));
    expect(codeOf(() => assemble(s, altered))).toMatchObject({ code: 'E_SIGNATURE', path: 'part[3]' });
    const other = split(answer, 'ar-1.billing.3.a');
    expect(codeOf(() => assemble(s, [s.parts[0], other.parts[1], s.parts[2], s.parts[3]]))).toMatchObject({
      code: 'E_SIGNATURE',
    });
  });

  it('a manifest that declares fewer parts than the answer has (truncated), signed by the service: E_ACCESS_PARTS at the end', () => {
    const whole = split();
    // A service fault: parts and a manifest for only the first 9000 bytes, the manifest declaring the whole answer's hash.
    const short = split(answer.subarray(0, 9000));
    const value = { ...short.manifest.value, sha256: whole.manifest.value.sha256 };
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    const manifest = { bytes, sig: toBase64url(signDetached(bytes, p.keys.billing.sign.secretKey)), value };
    expect(codeOf(() => assemble({ manifest, parts: short.parts }))).toMatchObject({
      code: 'E_ACCESS_PARTS',
      path: 'manifest.sha256',
    });
  });

  it('a manifest not signed by the service asked, for another question, or too large: refused', () => {
    const s = split();
    expect(codeOf(() => openManifest(s.manifest.bytes, undefined, p.rings.broker, expected))).toMatchObject({
      code: 'E_SIGNATURE',
    });
    const tampered = new TextEncoder().encode(
      new TextDecoder().decode(s.manifest.bytes).replace('"parts":4', '"parts":3'),
    );
    expect(codeOf(() => openManifest(tampered, s.manifest.sig, p.rings.broker, expected))).toMatchObject({
      code: 'E_SIGNATURE',
    });
    expect(
      codeOf(() =>
        openManifest(s.manifest.bytes, s.manifest.sig, p.rings.broker, { ...expected, service: 'registration' }),
      ),
    ).toMatchObject({ code: 'E_SENDER_MISMATCH' });
    expect(
      codeOf(() =>
        openManifest(s.manifest.bytes, s.manifest.sig, p.rings.broker, { ...expected, questionId: 'ar-1.billing.1' }),
      ),
    ).toMatchObject({ code: 'E_ENVELOPE_INVALID', path: 'manifest.id' });
    expect(
      codeOf(() => openManifest(s.manifest.bytes, s.manifest.sig, p.rings.broker, { ...expected, maxBytes: 9_999 })),
    ).toMatchObject({ code: 'E_TOO_LARGE', path: 'manifest.bytes' });
    expect(
      codeOf(() => openManifest(new TextEncoder().encode('nope'), s.manifest.sig, p.rings.broker, expected)),
    ).toMatchObject({ code: 'E_JSON_MALFORMED' });
    const registration = splitAnswer({
      id: ID,
      service: 'registration',
      bytes: answer,
      sig: 'c2ln',
      maxPart: 3000,
      signer: p.keys.registration.sign,
      token: '0123456789abcdef0123456789abcdef',
    });
    expect(
      codeOf(() => openManifest(registration.manifest.bytes, registration.manifest.sig, p.rings.broker, expected)),
    ).toMatchObject({ code: 'E_SENDER_MISMATCH' });
    expect(() =>
      splitAnswer({
        id: ID,
        service: 'billing',
        bytes: answer,
        sig: 'x',
        maxPart: 0,
        signer: p.keys.billing.sign,
        token: newPartsToken(),
      }),
    ).toThrow(TypeError);
    expect(MAX_PARTS).toBeGreaterThan(1000);
  });
});
