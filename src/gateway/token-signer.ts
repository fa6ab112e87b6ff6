// The gateways' access-token and notification keys: ES384 key pairs (RFC 7518 §3.4) shared by every gateway on the
// data dir, in `<keys>/gateway.token-signing.jwk.json` (mode 0600; made by the first gateway to start; a JWK Set,
// newest first, once `keys rotate --gateway` adds a version). The newest not refused by the key directory signs access
// tokens (RFC 9068 `at+jwt`, at most five minutes) and notifications; kid = RFC 7638 thumbprint (docs/keys.md).
// Under a key provider the file is sealed at rest (docs/keys-at-rest.md); the KeyFileStore given does the I/O.
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  CompactSign,
  SignJWT,
  calculateJwkThumbprint,
  jwtVerify,
  createLocalJWKSet,
  type JWTPayload,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
} from 'jose';
import { BrokerError } from '../wire/errors.js';
import { bindingRefusal, type PresentedCertificate } from './client-cert.js';
import type { KeyFileStore } from '../crypto/key-envelope.js';

export const TOKEN_ALGORITHM = 'ES384';
/** SMART Backend Services: access tokens live at most five minutes. */
export const ACCESS_TOKEN_LIFETIME_S = 300;

export function tokenKeyFile(keysDir: string): string {
  return join(keysDir, 'gateway.token-signing.jwk.json');
}

export interface IssuedToken {
  readonly accessToken: string;
  readonly tokenId: string;
  readonly expiresIn: number;
}

interface TokenKey {
  readonly key: CryptoKey;
  readonly publicJwk: JWK;
}

/** What the key directory says of a token kid: usable (active, or retiring in its overlap), refused, or not listed. */
export type TokenKeyStatus = 'usable' | 'refused' | 'unlisted';

export class TokenSigner {
  /** Held versions, newest first. */
  #versions: readonly TokenKey[];
  #status: (kid: string) => TokenKeyStatus = () => 'unlisted';

  private constructor(
    versions: readonly TokenKey[],
    private readonly file: string,
    private readonly store: KeyFileStore,
  ) {
    this.#versions = versions;
  }

  /** Reads the key file, or creates it when no gateway has yet (exclusive create: two racing gateways keep one). */
  static async open(keysDir: string, store: KeyFileStore = PLAIN_STORE): Promise<TokenSigner> {
    const file = tokenKeyFile(keysDir);
    const existing = await store.read(file);
    existing?.fill(0);
    if (existing === undefined) {
      const { privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
      const jwk = await exportJWK(privateKey);
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      await store.create(file, new TextEncoder().encode(JSON.stringify({ ...jwk, alg: TOKEN_ALGORITHM })));
    }
    return new TokenSigner(await readTokenKeys(file, store), file, store);
  }

  /** Reads the key file again (a rotation added a version); resolves with the kids held. */
  async reload(): Promise<string[]> {
    this.#versions = await readTokenKeys(this.file, this.store);
    return this.#versions.map((v) => v.publicJwk.kid as string);
  }

  /** Whether a kid is held. */
  holds(kid: string): boolean {
    return this.#versions.some((v) => v.publicJwk.kid === kid);
  }

  /** Ties the signer to the key directory's word on each kid (src/gateway/key-directory.ts). */
  followDirectory(status: (kid: string) => TokenKeyStatus): void {
    this.#status = status;
  }

  /** The version it signs with: the newest held that the directory does not refuse. */
  get publicJwk(): JWK {
    return this.#current().publicJwk;
  }

  #current(): TokenKey {
    const current = this.#versions.find((v) => this.#status(v.publicJwk.kid as string) !== 'refused');
    if (current === undefined)
      throw new BrokerError(
        'E_KEY_REVOKED',
        'every gateway token key is revoked or retired: run `keys rotate --gateway`',
        {
          path: 'gateway',
        },
      );
    return current;
  }

  /** The JWK Set of the token keys it holds that the directory does not refuse (RFC 7517 §5), newest first. */
  jwks(): { keys: JWK[] } {
    return {
      keys: this.#versions.filter((v) => this.#status(v.publicJwk.kid as string) !== 'refused').map((v) => v.publicJwk),
    };
  }

  /** An access token for `clientId` with `scope`, for the FHIR base `audience`, issued by `issuer`. */
  async issue(claims: {
    readonly issuer: string;
    readonly audience: string;
    readonly clientId: string;
    readonly scope: string;
    readonly now: number;
    /** RFC 8705 §3.1: bind the token to this client certificate (`cnf.x5t#S256`). */
    readonly certificateThumbprint?: string;
  }): Promise<IssuedToken> {
    const { key, publicJwk } = this.#current();
    const iat = Math.floor(claims.now / 1000);
    const tokenId = randomUUID();
    const accessToken = await new SignJWT({
      scope: claims.scope,
      client_id: claims.clientId,
      ...(claims.certificateThumbprint === undefined ? {} : { cnf: { 'x5t#S256': claims.certificateThumbprint } }),
    })
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: 'at+jwt', kid: publicJwk.kid as string })
      .setIssuer(claims.issuer)
      .setSubject(claims.clientId)
      .setAudience(claims.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ACCESS_TOKEN_LIFETIME_S)
      .setJti(tokenId)
      .sign(key);
    return { accessToken, tokenId, expiresIn: ACCESS_TOKEN_LIFETIME_S };
  }

  /**
   * Verifies an access token this gateway issued (signature by a token key not refused, `at+jwt`, issuer, audience,
   * expiry) and, when it is bound to a client certificate (RFC 8705 §3), that `certificate` is that one; throws if not.
   */
  async verifyAccessToken(
    token: string,
    issuer: string,
    audience: string,
    now: number,
    certificate?: PresentedCertificate,
  ): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, createLocalJWKSet(this.jwks()), {
      algorithms: [TOKEN_ALGORITHM],
      typ: 'at+jwt',
      issuer,
      audience,
      currentDate: new Date(now),
    });
    const refusal = bindingRefusal(payload, certificate);
    if (refusal !== undefined) throw new Error(refusal);
    return payload;
  }

  /**
   * A detached JWS over `payload` (RFC 7515 Appendix F): the compact serialization with its payload part empty,
   * `<header>..<signature>`, standard base64url payload encoding (b64 true), ES384 with this key's kid.
   */
  async signDetached(payload: Uint8Array): Promise<string> {
    const { key, publicJwk } = this.#current();
    const jws = await new CompactSign(payload)
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: publicJwk.kid as string })
      .sign(key);
    const [header, , signature] = jws.split('.');
    return `${header}..${signature}`;
  }
}

/**
 * The token key file's versions, newest first: one private ES384 JWK (a single version) or a JWK Set of them (after
 * `keys rotate --gateway`). Each kid is the RFC 7638 thumbprint of its public half.
 */
export async function readTokenKeys(file: string, store: KeyFileStore): Promise<TokenKey[]> {
  const bytes = await store.read(file);
  if (bytes === undefined) throw new BrokerError('E_INTERNAL', `${file} vanished after it was created`);
  const text = new TextDecoder().decode(bytes);
  bytes.fill(0);
  let jwks: JWK[];
  try {
    const json = JSON.parse(text) as JWK | { keys: JWK[] };
    jwks = 'keys' in json && Array.isArray(json.keys) ? json.keys : [json as JWK];
    if (jwks.length === 0 || jwks.some((jwk) => jwk.kty !== 'EC' || jwk.crv !== 'P-384' || typeof jwk.d !== 'string'))
      throw new Error('not an ES384 key');
  } catch {
    // Never echo the file: it holds the private key.
    throw new BrokerError('E_CONFIG_INVALID', `${file} is not an ES384 private JWK`, { path: file });
  }
  return Promise.all(
    jwks.map(async (jwk) => {
      const key = (await importJWK(jwk, TOKEN_ALGORITHM)) as CryptoKey;
      const { d: _d, kid: _k, alg: _a, use: _u, ...pub } = jwk;
      const kid = await calculateJwkThumbprint(pub, 'sha256');
      return { key, publicJwk: Object.freeze({ ...pub, kid, alg: TOKEN_ALGORITHM, use: 'sig' }) };
    }),
  );
}

/** A new ES384 private JWK for `keys rotate --gateway`: the file's JSON with it first, and its kid. */
export async function rotatedTokenKeyFile(file: string, existing: Uint8Array): Promise<{ json: string; kid: string }> {
  const held = heldJwks(file, existing);
  const { privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), alg: TOKEN_ALGORITHM };
  const { d: _d, alg: _a, ...pub } = jwk;
  const kid = await calculateJwkThumbprint(pub, 'sha256');
  return { json: JSON.stringify({ keys: [jwk, ...held] }), kid };
}

/** The plain (development) token key file: mode 0600, exclusive create. */
const PLAIN_STORE: KeyFileStore = {
  read(file) {
    try {
      return Promise.resolve(new Uint8Array(readFileSync(file)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Promise.resolve(undefined);
      return Promise.reject(err as Error);
    }
  },
  create(file, bytes) {
    try {
      writeFileSync(file, bytes, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      return Promise.resolve(true);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return Promise.resolve(false);
      return Promise.reject(e as Error);
    }
  },
};

/**
 * `keys prune --gateway`: the token key file's JSON without the versions whose kid is in `kids` (never the newest,
 * which signs), the kids it dropped and the kids it keeps.
 */
export async function prunedTokenKeyFile(
  file: string,
  existing: Uint8Array,
  kids: readonly string[],
): Promise<{ json: string; dropped: string[]; kept: string[] }> {
  const held = heldJwks(file, existing);
  const keep: JWK[] = [];
  const dropped: string[] = [];
  const kept: string[] = [];
  for (const [i, jwk] of held.entries()) {
    const { d: _d, kid: _k, alg: _a, use: _u, ...pub } = jwk;
    const kid = await calculateJwkThumbprint(pub, 'sha256');
    if (i > 0 && kids.includes(kid)) dropped.push(kid);
    else {
      keep.push(jwk);
      kept.push(kid);
    }
  }
  return { json: JSON.stringify({ keys: keep }), dropped, kept };
}

/** The private JWKs of a token key file's bytes: one JWK, or a JWK Set (never echoed: they are private). */
function heldJwks(file: string, bytes: Uint8Array): JWK[] {
  try {
    const json = JSON.parse(new TextDecoder().decode(bytes)) as JWK | { keys: JWK[] };
    return 'keys' in json && Array.isArray(json.keys) ? json.keys : [json as JWK];
  } catch {
    throw new BrokerError('E_CONFIG_INVALID', `${file} is not an ES384 private JWK`, { path: file });
  }
}
