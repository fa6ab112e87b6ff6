// JSON Web Key forms of service keys: OKP keys per RFC 8037 (Ed25519 for `use: "sig"`, X25519 for `use: "enc"`;
// `x` = public key, `d` = private key, both base64url) in JWK Sets per RFC 7517 section 5. Pure conversions;
// the files live in keyfiles.ts. Parsing is strict and checks that `d` really yields `x`.
import { BrokerError } from '../wire/errors.js';
import { fromBase64url, toBase64url } from './base64url.js';
import {
  encryptionKeyFromSecret,
  parseKid,
  signingKeyFromSeed,
  type KeyUse,
  type PublicKeyRecord,
  type ServiceKeys,
} from './keypairs.js';

export interface OkpJwk {
  kty: 'OKP';
  crv: 'Ed25519' | 'X25519';
  kid: string;
  use: KeyUse;
  alg?: 'EdDSA';
  x: string;
  d?: string;
}

export interface Jwks {
  keys: OkpJwk[];
}

const CRV: Record<KeyUse, OkpJwk['crv']> = { sig: 'Ed25519', enc: 'X25519' };

export function publicJwk(record: PublicKeyRecord): OkpJwk {
  const jwk: OkpJwk = {
    kty: 'OKP',
    crv: CRV[record.use],
    kid: record.kid,
    use: record.use,
    x: toBase64url(record.publicKey),
  };
  if (record.use === 'sig') jwk.alg = 'EdDSA';
  return jwk;
}

/** The private JWK Set of one service (every version given, in order). */
export function privateJwks(versions: readonly ServiceKeys[]): Jwks {
  const keys: OkpJwk[] = [];
  for (const v of versions) {
    keys.push({
      kty: 'OKP',
      crv: 'Ed25519',
      kid: v.sign.kid,
      use: 'sig',
      alg: 'EdDSA',
      x: toBase64url(v.sign.publicKey),
      d: toBase64url(v.sign.secretKey.subarray(0, 32)),
    });
    keys.push({
      kty: 'OKP',
      crv: 'X25519',
      kid: v.enc.kid,
      use: 'enc',
      x: toBase64url(v.enc.publicKey),
      d: toBase64url(v.enc.secretKey),
    });
  }
  return { keys };
}

function invalid(file: string, path: string, expected: string): BrokerError {
  return new BrokerError('E_CONFIG_INVALID', `${file}: ${path}: expected ${expected}`, { path: file });
}

function key32(file: string, path: string, value: unknown): Uint8Array {
  const bytes = typeof value === 'string' ? fromBase64url(value) : undefined;
  if (bytes === undefined || bytes.length !== 32) throw invalid(file, path, '32 bytes in base64url');
  return bytes;
}

interface CheckedJwk {
  kid: string;
  service: string;
  use: KeyUse;
  version: number;
  x: Uint8Array;
  d: Uint8Array | undefined;
}

function checkJwk(file: string, path: string, value: unknown, wantPrivate: boolean): CheckedJwk {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(file, path, 'a JWK object');
  const jwk = value as Record<string, unknown>;
  const kid = typeof jwk['kid'] === 'string' ? jwk['kid'] : '';
  const parsed = parseKid(kid);
  if (parsed === undefined) throw invalid(file, `${path}.kid`, '<service>:<sig|enc>:<n>');
  if (jwk['kty'] !== 'OKP') throw invalid(file, `${path}.kty`, '"OKP" (RFC 8037)');
  if (jwk['use'] !== parsed.use) throw invalid(file, `${path}.use`, `"${parsed.use}" (from the kid)`);
  if (jwk['crv'] !== CRV[parsed.use]) throw invalid(file, `${path}.crv`, `"${CRV[parsed.use]}"`);
  const x = key32(file, `${path}.x`, jwk['x']);
  if (!wantPrivate && 'd' in jwk) throw invalid(file, `${path}.d`, 'no private key in a public JWK Set');
  const d = wantPrivate ? key32(file, `${path}.d`, jwk['d']) : undefined;
  return { kid, service: parsed.service, use: parsed.use, version: parsed.version, x, d };
}

function keysArray(file: string, json: unknown): unknown[] {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { keys?: unknown }).keys))
    throw invalid(file, 'keys', 'a JWK Set { "keys": [...] }');
  return (json as { keys: unknown[] }).keys;
}

/** Public records from a public JWK Set (private members refused). */
export function recordsFromJwks(file: string, json: unknown): PublicKeyRecord[] {
  return keysArray(file, json).map((value, i) => {
    const k = checkJwk(file, `keys[${i}]`, value, false);
    return Object.freeze({ kid: k.kid, service: k.service, use: k.use, publicKey: k.x });
  });
}

/** Service key versions (highest version first) from one service's private JWK Set. */
export function serviceKeysFromJwks(file: string, serviceId: string, json: unknown): ServiceKeys[] {
  const sig = new Map<number, ServiceKeys['sign']>();
  const enc = new Map<number, ServiceKeys['enc']>();
  keysArray(file, json).forEach((value, i) => {
    const k = checkJwk(file, `keys[${i}]`, value, true);
    if (k.service !== serviceId) throw invalid(file, `keys[${i}].kid`, `a key of service ${serviceId}`);
    const d = k.d as Uint8Array;
    const pair = k.use === 'sig' ? signingKeyFromSeed(k.kid, d) : encryptionKeyFromSecret(k.kid, d);
    if (!bytesEqual(pair.publicKey, k.x)) throw invalid(file, `keys[${i}].x`, 'the public key of d');
    (k.use === 'sig' ? sig : enc).set(k.version, pair);
  });
  const versions = [...sig.keys()].sort((a, b) => b - a);
  if (versions.length === 0) throw invalid(file, 'keys', 'at least one signing and one encryption key');
  return versions.map((v) => {
    const sign = sig.get(v);
    const e = enc.get(v);
    if (sign === undefined || e === undefined)
      throw invalid(file, 'keys', `both a sig and an enc key for version ${v}`);
    return Object.freeze({ service: serviceId, sign, enc: e });
  });
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
