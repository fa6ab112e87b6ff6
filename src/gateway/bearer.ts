// The bearer access token on the partner gateway's FHIR routes (RFC 6750 §2.1): a JWT this gateway's token endpoint
// issued (token-signer.ts: ES384, typ at+jwt per RFC 9068, issuer and audience the FHIR base URL, at most five
// minutes), verified with jose against the gateway's own key. Scopes are SMART v2 `system/<Type>.<cruds>`.
import { createLocalJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import { parseScope } from '../catalog/partner.js';
import type { PartnerDef, ServiceDef } from '../catalog/types.js';
import { GATEWAY_CLOCK_SKEW_MS } from '../nats/setup.js';
import type { BrokerErrorCode } from '../wire/errors.js';
import { bindingRefusal, type PresentedCertificate } from './client-cert.js';
import type { IssueType } from './http-status.js';
import { TOKEN_ALGORITHM, type TokenSigner } from './token-signer.js';

/** A refused FHIR request: its HTTP status, FHIR issue type, stable code, the element or header it is about. */
export class InboundError extends Error {
  constructor(
    readonly status: number,
    readonly issueCode: IssueType,
    readonly code: BrokerErrorCode,
    readonly path: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export interface Caller {
  readonly service: ServiceDef;
  readonly partner: PartnerDef;
  readonly tokenId: string;
  readonly scopes: readonly string[];
}

const invalidToken = (message: string): InboundError =>
  new InboundError(401, 'login', 'E_PARTNER_TOKEN', 'Authorization', message);

/** Verifies the request's `Authorization: Bearer` token; throws InboundError 401 (E_PARTNER_TOKEN) otherwise. */
export async function verifyBearer(
  authorization: string | undefined,
  opts: {
    readonly signer: TokenSigner;
    readonly baseUrl: string;
    readonly partners: ReadonlyMap<string, { service: ServiceDef; partner: PartnerDef }>;
    readonly now: number;
    /** The verified client certificate of the request's connection: a bound token needs it (RFC 8705 §3). */
    readonly certificate: PresentedCertificate | undefined;
  },
): Promise<Caller> {
  const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(authorization ?? '');
  if (m === null) throw invalidToken('no bearer access token (Authorization: Bearer <token>)');
  let payload;
  try {
    ({ payload } = await jwtVerify(m[1] as string, createLocalJWKSet(opts.signer.jwks()), {
      algorithms: [TOKEN_ALGORITHM],
      typ: 'at+jwt',
      issuer: opts.baseUrl,
      audience: opts.baseUrl,
      clockTolerance: GATEWAY_CLOCK_SKEW_MS / 1000,
      currentDate: new Date(opts.now),
      requiredClaims: ['exp', 'jti', 'sub'],
    }));
  } catch (err) {
    throw invalidToken(
      err instanceof joseErrors.JWTExpired
        ? 'the access token is expired'
        : err instanceof joseErrors.JWTClaimValidationFailed
          ? `the access token's ${err.claim} is not this gateway's`
          : 'the access token does not verify with this gateway’s key',
    );
  }
  const unbound = bindingRefusal(payload, opts.certificate);
  if (unbound !== undefined) throw invalidToken(unbound);
  const found = typeof payload.sub === 'string' ? opts.partners.get(payload.sub) : undefined;
  if (found === undefined) throw invalidToken('the access token names no registered client');
  const scopes = typeof payload['scope'] === 'string' ? payload['scope'].split(' ').filter((s) => s !== '') : [];
  return { ...found, tokenId: payload.jti as string, scopes };
}

/** Throws 403 (E_PARTNER_SCOPE) unless a granted scope lets the caller create `type` (`system/<type>.c…`). */
export function requireCreate(caller: Caller, type: string, path: string): void {
  const ok = caller.scopes.some((s) => {
    const p = parseScope(s);
    return p !== undefined && p.resourceType === type && p.permissions.includes('c');
  });
  if (!ok)
    throw new InboundError(
      403,
      'forbidden',
      'E_PARTNER_SCOPE',
      path,
      `the access token grants no system/${type}.c scope`,
    );
}
