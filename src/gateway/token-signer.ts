// The gateway's access-token key: one ES384 key pair (RFC 7518 §3.4) shared by every gateway on the data dir, in
// `<keys>/gateway.token-signing.jwk.json` (mode 0600; made by the first gateway to start). It signs access tokens as
// JWTs (RFC 9068 `at+jwt`) of at most five minutes; its public half is the gateway's JWKS (`/.well-known/jwks.json`),
// with the RFC 7638 thumbprint as kid. Gateways on other machines get a copy of the file, as they do the broker's keys.
// Under a key provider the file is sealed at rest (docs/keys-at-rest.md); the KeyFileStore given does the I/O.
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  CompactSign,
  SignJWT,
  calculateJwkThumbprint,
  jwtVerify,
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

export class TokenSigner {
  private constructor(
    private readonly key: CryptoKey,
    readonly publicJwk: JWK,
  ) {}

  /** Reads the key file, or creates it when no gateway has yet (exclusive create: two racing gateways keep one). */
  static async open(keysDir: string, store: KeyFileStore = PLAIN_STORE): Promise<TokenSigner> {
    const file = tokenKeyFile(keysDir);
    let bytes = await store.read(file);
    if (bytes === undefined) {
      const { privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
      const jwk = await exportJWK(privateKey);
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      await store.create(file, new TextEncoder().encode(JSON.stringify({ ...jwk, alg: TOKEN_ALGORITHM })));
      bytes = await store.read(file);
      if (bytes === undefined) throw new BrokerError('E_INTERNAL', `${file} vanished after it was created`);
    }
    const text = new TextDecoder().decode(bytes);
    bytes.fill(0);
    let jwk: JWK;
    try {
      jwk = JSON.parse(text) as JWK;
      if (jwk.kty !== 'EC' || jwk.crv !== 'P-384' || typeof jwk.d !== 'string') throw new Error('not an ES384 key');
    } catch {
      // Never echo the file: it holds the private key.
      throw new BrokerError('E_CONFIG_INVALID', `${file} is not an ES384 private JWK`, { path: file });
    }
    const key = (await importJWK(jwk, TOKEN_ALGORITHM)) as CryptoKey;
    const { d: _d, ...pub } = jwk;
    const kid = await calculateJwkThumbprint(pub, 'sha256');
    return new TokenSigner(key, Object.freeze({ ...pub, kid, alg: TOKEN_ALGORITHM, use: 'sig' }));
  }

  /** The JWK Set of the gateway's token keys (RFC 7517 §5). */
  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
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
    const iat = Math.floor(claims.now / 1000);
    const tokenId = randomUUID();
    const accessToken = await new SignJWT({
      scope: claims.scope,
      client_id: claims.clientId,
      ...(claims.certificateThumbprint === undefined ? {} : { cnf: { 'x5t#S256': claims.certificateThumbprint } }),
    })
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: 'at+jwt', kid: this.publicJwk.kid as string })
      .setIssuer(claims.issuer)
      .setSubject(claims.clientId)
      .setAudience(claims.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ACCESS_TOKEN_LIFETIME_S)
      .setJti(tokenId)
      .sign(this.key);
    return { accessToken, tokenId, expiresIn: ACCESS_TOKEN_LIFETIME_S };
  }

  /**
   * Verifies an access token this gateway issued (signature, `at+jwt`, issuer, audience, expiry) and, when it is
   * bound to a client certificate (RFC 8705 §3), that `certificate` is that one; throws if not.
   */
  async verifyAccessToken(
    token: string,
    issuer: string,
    audience: string,
    now: number,
    certificate?: PresentedCertificate,
  ): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, this.publicJwk, {
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
    const jws = await new CompactSign(payload)
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: this.publicJwk.kid as string })
      .sign(this.key);
    const [header, , signature] = jws.split('.');
    return `${header}..${signature}`;
  }
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
