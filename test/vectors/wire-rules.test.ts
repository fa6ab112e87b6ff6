// The exact rules of docs/wire-format.md ("Exact encoding", "Quarantine copies", "Signature strictness") against the
// hand-written expectations in wire-rules.json: each group is checked with the product's code AND re-derived here
// from the document's words alone (an independent escaper, ordering rule, length formula, frame writer, libsodium).
import { createHash, verify as nodeVerify, createPublicKey } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBlob } from '../../src/crypto/aead.js';
import { fromBase64url, toBase64url } from '../../src/crypto/base64url.js';
import { deriveKek } from '../../src/crypto/kek.js';
import type { RandomSource } from '../../src/crypto/random.js';
import { signDetached, verifyDetached } from '../../src/crypto/sign.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';
import { verifyEd25519Strict } from '../../src/crypto/verify-strict.js';
import { openEnvelope, parseEnvelope, verifyEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { buildQuarantine, openQuarantine } from '../../src/broker/quarantine.js';
import { fhirElements, isResourceType } from '../../src/fhir/elements.js';
import { BrokerError } from '../../src/wire/errors.js';
import { parseJsonText, stringifyJson } from '../../src/wire/json.js';
import { makeParties, streamRandom, type Parties } from '../envelope/parties.js';

interface Rules {
  keys: { name: string; key: string; written: string; path: string }[];
  stringLeaves: { name: string; value: string; plaintext: string }[];
  memberOrder: { resourceJson: string; order: string[] };
  numbers: { name: string; lexeme: string }[];
  sealedLengths: { name: string; leafJson?: string; raw?: string; plaintextBytes: number; chars: number }[];
  quarantineFrame: {
    subject: string;
    signature: string;
    dataUtf8: string;
    recordId: string;
    aadUtf8: string;
    frame: string;
  };
  ed25519: {
    cases: {
      name: string;
      message: string;
      publicKey: string;
      signature: string;
      strict: boolean;
      openssl3: boolean;
    }[];
  };
}

const rules = JSON.parse(readFileSync(new URL('./wire-rules.json', import.meta.url), 'utf8')) as Rules;
const DOC = readFileSync(new URL('../../docs/wire-format.md', import.meta.url), 'utf8');
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
const ID = 'wire-rules-1';
let parties: Parties;

beforeAll(async () => {
  await initCrypto();
  parties = makeParties('wire-rules');
});

/** A random source that remembers what it handed out, so the data key (first 32 bytes) and nonces are known. */
function recording(label: string): RandomSource & { drawn: Uint8Array[] } {
  const inner = streamRandom(label);
  const drawn: Uint8Array[] = [];
  return Object.assign(
    (n: number) => {
      const b = inner(n);
      drawn.push(b);
      return b;
    },
    { drawn },
  );
}

/** Seals `resource` from registration to billing; returns the bytes as text, the data key and the data key id. */
function seal(
  resource: unknown,
  typ = 'Basic',
): { text: string; bytes: Uint8Array; dataKey: Uint8Array; dk: string; drawn: Uint8Array[] } {
  const random = recording(`wire-rules ${JSON.stringify(typ)}`);
  const sealed = sealEnvelope({
    id: ID,
    iss: 'registration',
    iat: 1_700_000_000_000,
    typ,
    resource,
    signer: parties.keys.registration.sign,
    recipients: [{ id: 'billing', kek: deriveKek(parties.keys.registration.enc, parties.keys.billing.enc) }],
    random,
  });
  // Sealed envelopes are UTF-8 (a lone surrogate never appears raw): a fatal decoder proves it.
  const text = new TextDecoder('utf-8', { fatal: true }).decode(sealed.bytes);
  const [dataKey, dkBytes] = random.drawn as [Uint8Array, Uint8Array];
  return { text, bytes: sealed.bytes, dataKey, dk: toBase64url(dkBytes), drawn: random.drawn };
}

function openedBy(bytes: Uint8Array): unknown {
  return openEnvelope(
    parseEnvelope(bytes),
    'billing',
    deriveKek(parties.keys.billing.enc, parties.keys.registration.enc),
  );
}

/** The body object's member texts in byte order: `"key":"sealed"` pairs of a flat body. */
function bodyMembers(text: string): { keyText: string; value: string }[] {
  const body = text.slice(text.indexOf('"body":{') + '"body":'.length);
  return [...body.matchAll(/("(?:[^"\\]|\\.)*"):"([^"]*)"/g)].map((m) => ({ keyText: m[1]!, value: m[2]! }));
}

/* --------------------------------------------------------------- independent derivations from the document */

/** docs/wire-format.md "Keys": the JSON string form of a key, written from the rule's words. */
function writtenKey(key: string): string {
  let out = '"';
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    const next = key.charCodeAt(i + 1);
    const high = c >= 0xd800 && c <= 0xdbff;
    const low = c >= 0xdc00 && c <= 0xdfff;
    if (high && next >= 0xdc00 && next <= 0xdfff) {
      out += key.slice(i, i + 2);
      i++;
    } else if (high || low) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0d) out += '\\r';
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += key[i];
  }
  return `${out}"`;
}

const SIMPLE_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** docs/wire-format.md "Member order": array-index keys ascending, then the other keys as written. */
function memberOrder(keysAsWritten: string[]): string[] {
  const isIndex = (k: string): boolean => /^(?:0|[1-9][0-9]*)$/.test(k) && Number(k) <= 2 ** 32 - 2;
  const indices = keysAsWritten.filter(isIndex).sort((a, b) => Number(a) - Number(b));
  return [...indices, ...keysAsWritten.filter((k) => !isIndex(k))];
}

/** base64url without padding of `n` bytes. */
const b64urlChars = (n: number): number => Math.ceil((n * 4) / 3);

describe('keys: JSON escaping and the AAD path', () => {
  it.each(rules.keys.map((k) => [k.name, k] as const))('%s', (_name, k) => {
    // Independent: the document's rule gives the written form and the path.
    expect(writtenKey(k.key)).toBe(k.written);
    expect(SIMPLE_KEY.test(k.key) ? `Basic.${k.key}` : `Basic[${k.written}]`).toBe(k.path);
    // Product: the bytes carry the key in that form, the leaf opens under exactly that AAD path, and the key
    // comes back as the same string.
    const s = seal({ resourceType: 'Basic', [k.key]: 'v' });
    const members = bodyMembers(s.text);
    // An array-index key ("0") comes before resourceType (see member order).
    const order = memberOrder(['resourceType', k.key]);
    expect(members.map((m) => m.keyText)).toEqual(order.map((key) => (key === k.key ? k.written : '"resourceType"')));
    const leaf = fromBase64url(members[order.indexOf(k.key)]!.value)!;
    const aad = utf8(`v1|${ID}|${k.path}|${s.dk}`);
    expect(Buffer.from(openBlob(s.dataKey, leaf, aad)).toString('utf8')).toBe('"v"');
    expect(Object.keys(openedBy(s.bytes) as object)).toEqual(order);
  });
});

describe('string leaves: the plaintext is the JSON text of the string', () => {
  it.each(rules.stringLeaves.map((l) => [l.name, l] as const))('%s', (_name, l) => {
    expect(writtenKey(l.value)).toBe(l.plaintext);
    const s = seal({ resourceType: 'Basic', x: l.value });
    const leaf = fromBase64url(bodyMembers(s.text)[1]!.value)!;
    const plain = openBlob(s.dataKey, leaf, utf8(`v1|${ID}|Basic.x|${s.dk}`));
    expect(new TextDecoder('utf-8', { fatal: true }).decode(plain)).toBe(l.plaintext);
    expect((openedBy(s.bytes) as { x: string }).x).toBe(l.value);
  });
});

describe('member order', () => {
  it('array-index keys first in ascending order, then the rest as written; nonces drawn in that order', () => {
    const { resourceJson, order } = rules.memberOrder;
    const asWritten = [...resourceJson.matchAll(/"([^"]*)":/g)].map((m) => m[1]!);
    expect(memberOrder(asWritten)).toEqual(order);
    const parsed = parseJsonText(resourceJson);
    if (!('value' in parsed)) throw new Error('vector is not JSON');
    const s = seal(parsed.value);
    const members = bodyMembers(s.text);
    expect(members.map((m) => JSON.parse(m.keyText) as string)).toEqual(order);
    // Drawn: data key 32, data key id 9, one wrap nonce 24, then one nonce per sealed leaf in member order.
    const leafNonces = s.drawn.slice(3).map((b) => Buffer.from(b).toString('hex'));
    const sealedLeaves = members.filter((m) => m.keyText !== '"resourceType"');
    expect(sealedLeaves.map((m) => Buffer.from(fromBase64url(m.value)!.subarray(0, 24)).toString('hex'))).toEqual(
      leafNonces,
    );
  });
});

describe('numbers: the lexeme is the plaintext, end to end', () => {
  it.each(rules.numbers.map((n) => [n.name, n.lexeme] as const))('%s: %s', (_name, lexeme) => {
    // Independent: an RFC 8259 number that a Number() round trip would change.
    expect(lexeme).toMatch(/^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/);
    expect(String(JSON.parse(lexeme) as number)).not.toBe(lexeme);
    // Product: sealed as the lexeme's bytes at Basic.x, and opened to the same text.
    const text = `{"resourceType":"Basic","x":${lexeme}}`;
    const parsed = parseJsonText(text);
    if (!('value' in parsed)) throw new Error('vector is not JSON');
    const s = seal(parsed.value);
    const leaf = fromBase64url(bodyMembers(s.text)[1]!.value)!;
    const plain = openBlob(s.dataKey, leaf, utf8(`v1|${ID}|Basic.x|${s.dk}`));
    expect(Buffer.from(plain).toString('utf8')).toBe(lexeme);
    expect(stringifyJson(openedBy(s.bytes))).toBe(text);
  });
});

describe('sealed value lengths', () => {
  it.each(rules.sealedLengths.map((l) => [l.name, l] as const))('%s', (_name, l) => {
    // Independent: base64url (no padding) of nonce 24 + plaintext + tag 16.
    expect(b64urlChars(24 + l.plaintextBytes + 16)).toBe(l.chars);
    if (l.raw !== undefined) {
      const s = seal({ raw: utf8(l.raw) }, '$raw');
      expect(s.text).toMatch(new RegExp(`"body":"[A-Za-z0-9_-]{${l.chars}}"}$`));
    } else {
      const parsed = parseJsonText(`{"resourceType":"Basic","x":${l.leafJson}}`);
      if (!('value' in parsed)) throw new Error('vector is not JSON');
      expect(bodyMembers(seal(parsed.value).text)[1]!.value).toHaveLength(l.chars);
    }
  });

  it('the document states the shortest leaf', () => {
    const shortest = Math.min(...rules.sealedLengths.filter((l) => l.leafJson !== undefined).map((l) => l.chars));
    expect(DOC).toContain(`at least ${shortest} characters`);
  });
});

describe('quarantine copy frame', () => {
  it('u32 big-endian length prefixes; the sealed copy opens under the recorded AAD', () => {
    const q = rules.quarantineFrame;
    // Independent: the frame from the document's words.
    const subject = Buffer.from(q.subject, 'utf8');
    const sig = Buffer.from(q.signature, 'utf8');
    const len = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      new DataView(b.buffer, b.byteOffset, 4).setUint32(0, n, false);
      return b;
    };
    const frame = Buffer.concat([len(subject.length), subject, len(sig.length), sig, Buffer.from(q.dataUtf8, 'utf8')]);
    expect(frame.toString('hex')).toBe(q.frame);
    // Product.
    const key = new Uint8Array(createHash('sha256').update('wire-rules quarantine key').digest());
    const input = { subject: q.subject, data: utf8(q.dataUtf8), signature: q.signature, ingestSeq: 42 };
    const { record, parts } = buildQuarantine(
      input,
      new BrokerError('E_NOT_FHIR', 'not FHIR'),
      { at: 0 },
      { version: 1, key },
    );
    expect(record.id).toBe(q.recordId);
    const sealed = new Uint8Array(Buffer.concat(parts));
    expect(Buffer.from(openBlob(key, sealed, utf8(q.aadUtf8))).toString('hex')).toBe(q.frame);
    expect(openQuarantine(record, parts, key)).toMatchObject({ subject: q.subject, signature: q.signature });
  });
});

describe('resource types that keep resourceType and meta plaintext', () => {
  it('the document lists exactly the R4 resource types the sealer knows, which are DefinitelyTyped’s R4 list', () => {
    const section = DOC.slice(DOC.indexOf('Exact match, case-sensitive:'));
    const listed = section
      .slice(0, section.indexOf('\n#', 5))
      .match(/`[A-Z][A-Za-z]+`/g)!
      .map((s) => s.slice(1, -1));
    expect(listed).toEqual([...fhirElements().resources].sort());
    expect(listed.every(isResourceType)).toBe(true);
    expect(['Resource', 'DomainResource', 'patient', 'Patients'].some(isResourceType)).toBe(false);
    // Independent: DefinitelyTyped's R4 union of every resource type (@types/fhir r4.d.ts `FhirResource`).
    const types = readFileSync(new URL('../../node_modules/@types/fhir/r4.d.ts', import.meta.url), 'utf8');
    const union = /export type FhirResource =([^;]*);/
      .exec(types)![1]!
      .split('|')
      .map((t) => t.trim());
    expect(listed).toEqual(union.filter((t) => t !== '').sort());
  });
});

describe('Ed25519 strictness (docs/wire-format.md "Signature strictness")', () => {
  const cases = (): Rules['ed25519']['cases'] => rules.ed25519.cases;

  it('speccheck vectors: the product, its strict function and libsodium (the reference) agree with the rule', () => {
    expect(cases()).toHaveLength(12);
    for (const c of cases()) {
      const [m, pk, sig] = [hex(c.message), hex(c.publicKey), hex(c.signature)];
      expect({ name: c.name, product: verifyDetached(m, sig, pk) }).toEqual({ name: c.name, product: c.strict });
      expect({ name: c.name, strict: verifyEd25519Strict(m, sig, pk) }).toEqual({ name: c.name, strict: c.strict });
      let sodium = false;
      try {
        sodium = getSodium().crypto_sign_verify_detached(sig, m, pk);
      } catch {
        sodium = false;
      }
      expect({ name: c.name, libsodium: sodium }).toEqual({ name: c.name, libsodium: c.strict });
    }
  });

  it('OpenSSL alone (node:crypto) accepts what the document says it does: the reason for the rule', () => {
    const spki = Buffer.from('302a300506032b6570032100', 'hex');
    for (const c of cases()) {
      const key = createPublicKey({ key: Buffer.concat([spki, hex(c.publicKey)]), format: 'der', type: 'spki' });
      expect({ name: c.name, openssl: nodeVerify(null, hex(c.message), key, hex(c.signature)) }).toEqual({
        name: c.name,
        openssl: c.openssl3,
      });
    }
  });

  it('derived cases: a good signature verifies; S + L, a small-order R and a flipped bit do not', () => {
    const { sign } = parties.keys.registration;
    const msg = utf8('phi-broker wire rules');
    const good = signDetached(msg, sign.secretKey);
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const s = BigInt(`0x${Buffer.from(good.subarray(32)).reverse().toString('hex')}`);
    const sPlusL = Buffer.from((s + L).toString(16).padStart(64, '0'), 'hex').reverse();
    const variants: [string, Uint8Array, boolean][] = [
      ['good', good, true],
      ['S + L', new Uint8Array([...good.subarray(0, 32), ...sPlusL]), false],
      ['R = identity', new Uint8Array([1, ...new Uint8Array(31), ...good.subarray(32)]), false],
      ['flipped bit', new Uint8Array([...good.subarray(0, 63), good[63]! ^ 1]), false],
    ];
    for (const [name, sig, want] of variants) {
      expect({ name, product: verifyDetached(msg, sig, sign.publicKey) }).toEqual({ name, product: want });
      expect({ name, libsodium: getSodium().crypto_sign_verify_detached(sig, msg, sign.publicKey) }).toEqual({
        name,
        libsodium: want,
      });
    }
  });

  it('the envelope check (broker and SDK) refuses a small-order signature OpenSSL alone accepts', () => {
    const c = cases()[0]!;
    expect(c.openssl3 && !c.strict).toBe(true);
    expect(() => verifyEnvelope(hex(c.message), toBase64url(hex(c.signature)), hex(c.publicKey))).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE' }) as Error,
    );
  });

  it('every Ed25519 verification in src/ goes through verify-strict.ts', () => {
    const root = new URL('../../src/', import.meta.url);
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const text = (f: string): string => readFileSync(new URL(f, root), 'utf8');
    // node:crypto's verify (OpenSSL) is never used for Ed25519; libsodium's verify is reached only through the
    // backends (native and WebAssembly) and the WebAssembly reference the vector tests compare with.
    const nodeVerifiers = files.filter((f) => /import \{[^}]*\bverify\b[^}]*\} from 'node:crypto'/.test(text(f)));
    expect(nodeVerifiers).toEqual([]);
    expect(files.filter((f) => /\.crypto_sign_verify|\bcrypto_sign_verify_detached\(/.test(text(f))).sort()).toEqual([
      'crypto/backend.ts',
      'crypto/sign.ts',
    ]);
    expect(text('crypto/verify-strict.ts')).toContain('cryptoBackend().verify(');
    // jose verifies partner assertions; for EdDSA the same file applies the strict rule first.
    const jose = files.filter((f) => /\bjwtVerify\(|\bcompactVerify\(|\bflattenedVerify\(/.test(text(f)));
    // bearer.ts and token-signer.ts verify the gateway's own access tokens, pinned to ES384: no Ed25519 there.
    expect(jose.sort()).toEqual(['gateway/assertion.ts', 'gateway/bearer.ts', 'gateway/token-signer.ts']);
    expect(text('gateway/bearer.ts')).toContain('algorithms: [TOKEN_ALGORITHM]');
    expect(text('gateway/token-signer.ts')).toContain('algorithms: [TOKEN_ALGORITHM]');
    expect(text('gateway/assertion.ts')).toContain('verifyEd25519Strict(');
    expect(text('crypto/sign.ts')).toContain('return verifyEd25519Strict(');
  });
});
