// The client assertion of SMART Backend Services (http://hl7.org/fhir/smart-app-launch/backend-services.html,
// "Authenticating to the token endpoint"; RFC 7523 §3): a JWT signed with RS384 or ES384 (EdDSA too) by a key the
// partner registered in the catalog (inline or at its JWKS URL, partner-jwks.ts), chosen by `kid` among that
// partner's keys only, with iss = sub = client_id, aud = this token endpoint's URL, exp at most five minutes ahead,
// and a jti. Whether the jti was seen before is jti.ts's question (it needs NATS); everything else is decided here
// from the token, the catalog, the partner's key set and the clock.
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWK,
  type JWSHeaderParameters,
  type JWTPayload,
} from 'jose';
import type { Catalog, PartnerDef, PartnerJwk, ServiceDef } from '../catalog/types.js';
import { fromBase64url } from '../crypto/base64url.js';
import { verifyEd25519Strict } from '../crypto/verify-strict.js';
import { GATEWAY_ASSERTION_MAX_LIFETIME_MS, GATEWAY_CLOCK_SKEW_MS } from '../nats/setup.js';
import { OAuthError } from './oauth-error.js';
import type { ClientKeySet } from './key-directory.js';
import type { PartnerKeys } from './partner-jwks.js';

/** Asymmetric algorithms SMART Backend Services allows (RS384, ES384) and EdDSA (RFC 8037); never HS* or none. */
export const ASSERTION_ALGORITHMS = ['RS384', 'ES384', 'EdDSA'] as const;

/** RFC 7523 §2.2: the client_assertion_type of a JWT bearer client assertion. */
export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface VerifiedAssertion {
  readonly service: ServiceDef;
  readonly partner: PartnerDef;
  readonly jti: string;
  /** exp, in ms since the epoch. */
  readonly expMs: number;
  readonly kid: string;
}

/** A partner by client id, compiled once from the catalog. */
export function partnersByClientId(
  catalog: Catalog,
): ReadonlyMap<string, { service: ServiceDef; partner: PartnerDef }> {
  const out = new Map<string, { service: ServiceDef; partner: PartnerDef }>();
  for (const service of catalog.services.values())
    if (service.partner !== undefined) out.set(service.partner.clientId, { service, partner: service.partner });
  return out;
}

const refuse = (path: string, message: string): OAuthError =>
  new OAuthError('invalid_client', 'E_PARTNER_AUTH', path, message);

/**
 * Verifies `assertion` for the token endpoint at `tokenUrl`; `clientId` is the request's client_id parameter when it
 * sent one (it must then name the same client). Throws OAuthError invalid_client naming the claim that failed.
 */
export async function verifyClientAssertion(
  assertion: string,
  opts: {
    readonly tokenUrl: string;
    readonly clientId: string | undefined;
    readonly partners: ReadonlyMap<string, { service: ServiceDef; partner: PartnerDef }>;
    /** Each partner's keys: inline, or fetched from its JWKS URL. */
    readonly keys: PartnerKeys;
    readonly now: number;
    /** A partner's keys in the key directory by service id, when it lists any (src/gateway/key-directory.ts). */
    readonly clientKeys?: (service: string) => ClientKeySet | undefined;
  },
): Promise<VerifiedAssertion> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(assertion);
    unverified = decodeJwt(assertion);
  } catch {
    throw refuse('client_assertion', 'not a JWT in JWS compact serialisation');
  }
  const alg = header.alg;
  if (typeof alg !== 'string' || !(ASSERTION_ALGORITHMS as readonly string[]).includes(alg))
    throw refuse(
      'client_assertion.header.alg',
      `algorithm not allowed: expected one of ${ASSERTION_ALGORITHMS.join(', ')}`,
    );
  if (typeof header.kid !== 'string' || header.kid === '')
    throw refuse('client_assertion.header.kid', 'missing: the key id of the signing key');
  const iss = unverified.iss;
  if (typeof iss !== 'string') throw refuse('client_assertion.iss', 'missing: expected the client id');
  const found = opts.partners.get(iss);
  if (found === undefined) throw refuse('client_assertion.iss', 'not the client id of a registered partner');
  if (opts.clientId !== undefined && opts.clientId !== iss)
    throw refuse('client_id', 'names another client than the assertion');
  // SMART Backend Services: a jku header must be the JWKS URL registered for this client, else verification fails.
  if (header.jku !== undefined && header.jku !== found.partner.jwksUrl)
    throw refuse('client_assertion.header.jku', "not this client's registered JWKS URL");
  // The key comes from this partner's keys only: another partner's kid is as unknown here as a made-up one.
  const keys = await clientKeys(found, header, opts);
  if (keys.length === 0) throw refuse('client_assertion.header.kid', "not a key id of this client's registered keys");
  // EdDSA under phi-broker's one Ed25519 rule (docs/wire-format.md "Signature strictness") before jose's own check.
  if (alg === 'EdDSA' && !ed25519Strict(assertion, keys)) throw joseRefusal(undefined);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(assertion, createLocalJWKSet({ keys: keys as unknown as JWK[] }), {
      algorithms: [...ASSERTION_ALGORITHMS],
      issuer: iss,
      subject: iss,
      audience: opts.tokenUrl,
      clockTolerance: GATEWAY_CLOCK_SKEW_MS / 1000,
      currentDate: new Date(opts.now),
      requiredClaims: ['exp', 'jti', 'sub', 'aud'],
    }));
  } catch (err) {
    throw joseRefusal(err);
  }
  const expMs = (payload.exp as number) * 1000;
  if (expMs - opts.now > GATEWAY_ASSERTION_MAX_LIFETIME_MS + GATEWAY_CLOCK_SKEW_MS)
    throw refuse('client_assertion.exp', 'more than five minutes in the future');
  const jti = payload.jti;
  if (typeof jti !== 'string' || jti === '' || jti.length > 256)
    throw refuse('client_assertion.jti', 'expected a string of 1 to 256 characters');
  return { service: found.service, partner: found.partner, jti, expMs, kid: header.kid };
}

/**
 * The client's keys with the assertion's kid: a kid the key directory lists is decided by the directory (usable, or
 * refused when retired or revoked, even if the catalog or the JWKS URL still has it); any other comes from the
 * partner's registered keys, inline or at its JWKS URL (the bootstrap).
 */
async function clientKeys(
  found: { service: ServiceDef; partner: PartnerDef },
  header: JWSHeaderParameters,
  opts: { readonly keys: PartnerKeys; readonly clientKeys?: (service: string) => ClientKeySet | undefined },
): Promise<readonly PartnerJwk[]> {
  const directory = opts.clientKeys?.(found.service.id);
  if (header.kid !== undefined && directory?.listed.has(header.kid))
    return directory.usable.filter((k) => k.kid === header.kid);
  return opts.keys.keysFor(found.partner, header);
}

/** Whether one of `keys` (OKP Ed25519 JWKs) verifies the compact JWS by the strict rule (src/crypto/verify-strict.ts). */
function ed25519Strict(assertion: string, keys: readonly PartnerJwk[]): boolean {
  const cut = assertion.lastIndexOf('.');
  const sig = fromBase64url(assertion.slice(cut + 1));
  const input = new TextEncoder().encode(assertion.slice(0, cut));
  return (
    sig !== undefined &&
    keys.some((k) => {
      const x = k['crv'] === 'Ed25519' && k['x'] !== undefined ? fromBase64url(k['x']) : undefined;
      return x !== undefined && verifyEd25519Strict(input, sig, x);
    })
  );
}

/** jose's verification failures as the claim they are about; anything else is a signature that does not verify. */
function joseRefusal(err: unknown): OAuthError {
  if (err instanceof joseErrors.JWTExpired) return refuse('client_assertion.exp', 'expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const claim = err.claim;
    const reason =
      claim === 'aud'
        ? 'not the URL of this token endpoint'
        : claim === 'sub'
          ? 'expected the client id'
          : claim === 'iss'
            ? 'expected the client id'
            : claim === 'nbf'
              ? 'not yet valid'
              : claim === 'iat'
                ? 'issued in the future'
                : err.reason === 'missing'
                  ? 'missing'
                  : 'invalid';
    return refuse(`client_assertion.${claim}`, reason);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return refuse('client_assertion.header.alg', 'algorithm not allowed for this key');
  return refuse('client_assertion', 'the signature does not verify with the registered key');
}
