// The token endpoint of SMART Backend Services (http://hl7.org/fhir/smart-app-launch/backend-services.html): an
// RFC 6749 §4.4 client-credentials request authenticated by an RFC 7523 private_key_jwt client assertion. Checks
// the request, the assertion (assertion.ts), the jti across gateways (jti.ts) and the scopes (scopes.ts), issues an
// access token (token-signer.ts), and returns the answer with the audit fact that records it — the caller stores the
// fact before answering, so no token leaves that the audit trail does not hold.
import { decodeJwt } from 'jose';
import type { PartnerDef, ServiceDef } from '../catalog/types.js';
import type { ClientKeySet } from './key-directory.js';
import type { PartnerTokenFact } from '../audit/facts.js';
import { JWT_BEARER_ASSERTION, verifyClientAssertion, type VerifiedAssertion } from './assertion.js';
import { certificateOfClient, type PresentedCertificate } from './client-cert.js';
import type { PartnerKeys } from './partner-jwks.js';
import type { JtiStore } from './jti.js';
import { OAuthError } from './oauth-error.js';
import { grantScopes } from './scopes.js';
import type { TokenSigner } from './token-signer.js';

export interface TokenContext {
  /** The token endpoint's URL: the `aud` every assertion must carry. */
  readonly tokenUrl: string;
  /** The FHIR base URL: issuer and audience of the access tokens. */
  readonly baseUrl: string;
  readonly partners: ReadonlyMap<string, { service: ServiceDef; partner: PartnerDef }>;
  /** Each partner's assertion keys: inline, or from its JWKS URL. */
  readonly keys: PartnerKeys;
  readonly jti: JtiStore;
  readonly signer: TokenSigner;
  readonly now: () => number;
  /** A partner's client-assertion keys from the key directory, when it holds any. */
  readonly clientKeys?: (service: string) => ClientKeySet | undefined;
}

export interface TokenAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly fact: PartnerTokenFact;
}

/** The single value of a form parameter; a missing or repeated one (RFC 6749 §3.2) is invalid_request. */
function one(params: URLSearchParams, name: string): string {
  const all = params.getAll(name);
  if (all.length !== 1 || all[0] === '')
    throw new OAuthError(
      'invalid_request',
      'E_PARTNER_REQUEST',
      name,
      all.length > 1 ? 'repeated (each parameter once)' : 'missing',
    );
  return all[0] as string;
}

/** The registered client id a request names (its assertion's iss, unverified), for the audit of a refusal. */
function claimedClient(params: URLSearchParams, ctx: TokenContext): string | undefined {
  try {
    const iss = decodeJwt(params.get('client_assertion') ?? '').iss;
    return iss !== undefined && ctx.partners.has(iss) ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** `certificate`: the verified client certificate of the request's TLS connection, if it presented one. */
export async function handleTokenRequest(
  params: URLSearchParams,
  address: string,
  certificate: PresentedCertificate | undefined,
  ctx: TokenContext,
): Promise<TokenAnswer> {
  let verified: VerifiedAssertion | undefined;
  let asked: readonly string[] | undefined;
  try {
    const grantType = one(params, 'grant_type');
    if (grantType !== 'client_credentials')
      throw new OAuthError('unsupported_grant_type', 'E_PARTNER_REQUEST', 'grant_type', 'expected client_credentials');
    if (one(params, 'client_assertion_type') !== JWT_BEARER_ASSERTION)
      throw new OAuthError(
        'invalid_request',
        'E_PARTNER_REQUEST',
        'client_assertion_type',
        `expected ${JWT_BEARER_ASSERTION}`,
      );
    const assertion = one(params, 'client_assertion');
    const scope = one(params, 'scope');
    const clientIds = params.getAll('client_id');
    if (clientIds.length > 1)
      throw new OAuthError('invalid_request', 'E_PARTNER_REQUEST', 'client_id', 'repeated (each parameter once)');
    verified = await verifyClientAssertion(assertion, {
      tokenUrl: ctx.tokenUrl,
      clientId: clientIds[0],
      partners: ctx.partners,
      keys: ctx.keys,
      now: ctx.now(),
      ...(ctx.clientKeys === undefined ? {} : { clientKeys: ctx.clientKeys }),
    });
    // RFC 8705: a partner registered with mtls authenticates with its certificate too, and its token is bound to it.
    const thumbprint = certificateOfClient(verified.partner, certificate);
    // The assertion is spent once verified, whatever the scopes: a replay of it fails on every gateway.
    await ctx.jti.claim(verified.partner.clientId, verified.jti);
    const granted = grantScopes(scope, verified.partner);
    asked = granted;
    const token = await ctx.signer.issue({
      issuer: ctx.baseUrl,
      audience: ctx.baseUrl,
      clientId: verified.partner.clientId,
      scope: granted.join(' '),
      now: ctx.now(),
      ...(thumbprint === undefined ? {} : { certificateThumbprint: thumbprint }),
    });
    return {
      status: 200,
      // RFC 6749 §5.1; SMART: token_type bearer, expires_in, scope.
      body: {
        access_token: token.accessToken,
        token_type: 'bearer',
        expires_in: token.expiresIn,
        scope: granted.join(' '),
      },
      fact: {
        kind: 'partner-token',
        address,
        service: verified.service.id,
        clientId: verified.partner.clientId,
        granted: true,
        scopes: granted,
        kid: verified.kid,
        tokenId: token.tokenId,
      },
    };
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    const clientId = verified?.partner.clientId ?? claimedClient(params, ctx);
    const scopes = asked ?? scopesAsked(params);
    return {
      status: err.status,
      body: err.body(),
      fact: {
        kind: 'partner-token',
        address,
        ...(verified === undefined ? {} : { service: verified.service.id, kid: verified.kid }),
        ...(clientId === undefined ? {} : { clientId }),
        granted: false,
        ...(scopes === undefined ? {} : { scopes }),
        code: err.code,
        path: err.path,
      },
    };
  }
}

/** The requested scopes for the audit record, only when each is in SMART scope grammar (never free text). */
function scopesAsked(params: URLSearchParams): readonly string[] | undefined {
  const scope = params.getAll('scope');
  if (scope.length !== 1) return undefined;
  const list = (scope[0] as string).split(' ').filter((s) => s !== '');
  return list.length > 0 && list.length <= 50 && list.every((s) => /^system\/[A-Za-z*]+\.[cruds]+$/.test(s))
    ? list
    : undefined;
}
