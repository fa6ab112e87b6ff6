// Partner EdDSA client assertions are verified under phi-broker's one Ed25519 rule (docs/wire-format.md "Signature
// strictness"): a JWT that jose (OpenSSL) alone accepts under a small-order key is refused; an honest one passes.
import { createPublicKey, randomUUID, verify as nodeVerify } from 'node:crypto';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { initCrypto } from '../../src/crypto/sodium.js';
import type { PartnerDef, ServiceDef } from '../../src/catalog/types.js';
import { toBase64url } from '../../src/crypto/base64url.js';
import { verifyClientAssertion } from '../../src/gateway/assertion.js';
import { PartnerKeys } from '../../src/gateway/partner-jwks.js';

const TOKEN_URL = 'https://gateway.test/auth/token';
const CLIENT = 'partner-ed';
const NOW = 1_800_000_000_000;
// ed25519-speccheck case 0 (test/vectors/wire-rules.json): small-order A, small-order R, S = 0.
const SMALL_A = Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 'hex');
const SMALL_SIG = Buffer.from(
  `c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a${'00'.repeat(32)}`,
  'hex',
);

function partners(jwk: JWK): Parameters<typeof verifyClientAssertion>[1]['partners'] {
  const partner = {
    clientId: CLIENT,
    jwks: { keys: [{ ...jwk, kid: 'k1' }] },
    scopes: [],
    rateLimit: { max: 10, windowSeconds: 60 },
    restHooks: [],
  } as unknown as PartnerDef;
  return new Map([[CLIENT, { service: { id: 'payer' } as unknown as ServiceDef, partner }]]);
}

const claims = (jti: string): Record<string, unknown> => ({
  iss: CLIENT,
  sub: CLIENT,
  aud: TOKEN_URL,
  exp: Math.floor(NOW / 1000) + 60,
  jti,
});

describe('gateway EdDSA assertions', () => {
  beforeAll(async () => {
    await initCrypto();
  });
  it('an honest EdDSA assertion verifies', async () => {
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
    const jwt = await new SignJWT(claims(randomUUID()))
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
      .sign(privateKey);
    const got = await verifyClientAssertion(jwt, {
      tokenUrl: TOKEN_URL,
      clientId: CLIENT,
      partners: partners(await exportJWK(publicKey)),
      keys: new PartnerKeys([]),
      now: NOW,
    });
    expect(got.kid).toBe('k1');
  });

  it('a small-order key and signature that jose alone accepts are refused', async () => {
    const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: toBase64url(SMALL_A) };
    const spki = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), SMALL_A]),
      format: 'der',
      type: 'spki',
    });
    const header = toBase64url(Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: 'k1' })));
    // The signature holds for about one message in eight (k mod 8 picks the torsion point): try jti values.
    let jwt: string | undefined;
    for (let i = 0; i < 256 && jwt === undefined; i++) {
      const input = `${header}.${toBase64url(Buffer.from(JSON.stringify(claims(`jti-${i}`))))}`;
      if (nodeVerify(null, Buffer.from(input), spki, SMALL_SIG)) jwt = `${input}.${toBase64url(SMALL_SIG)}`;
    }
    expect(jwt).toBeDefined();
    // jose (OpenSSL) alone accepts it …
    const { payload } = await jwtVerify(jwt!, createLocalJWKSet({ keys: [{ ...jwk, kid: 'k1' }] }), {
      currentDate: new Date(NOW),
    });
    expect(payload.iss).toBe(CLIENT);
    // … the gateway does not.
    await expect(
      verifyClientAssertion(jwt!, {
        tokenUrl: TOKEN_URL,
        clientId: CLIENT,
        partners: partners(jwk),
        keys: new PartnerKeys([]),
        now: NOW,
      }),
    ).rejects.toMatchObject({ code: 'E_PARTNER_AUTH', path: 'client_assertion' });
  });
});
