// Mutual-TLS client authentication and certificate-bound access tokens (RFC 8705): the client certificate a
// connection presented and the gateway's client CA verified, its subject DN (§2.1, PKI method) and its SHA-256
// thumbprint, which a bound token carries as `cnf: { "x5t#S256": … }` (§3.1).
import { X509Certificate, createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { JWTPayload } from 'jose';
import type { PartnerDef } from '../catalog/types.js';
import { OAuthError } from './oauth-error.js';

export interface PresentedCertificate {
  /** RFC 4514 order (the last RDN first): `CN=partner-payer,OU=partner,O=phi-broker`. */
  readonly subjectDn: string;
  /** base64url SHA-256 of the DER certificate: RFC 8705 `x5t#S256`. */
  readonly thumbprint: string;
}

/** The verified client certificate of the request's TLS connection; undefined when none or one the CA did not sign. */
export function presentedCertificate(socket: unknown): PresentedCertificate | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (tls.encrypted !== true || tls.authorized !== true || typeof tls.getPeerCertificate !== 'function')
    return undefined;
  const raw = tls.getPeerCertificate().raw as Buffer | undefined;
  if (raw === undefined || raw.length === 0) return undefined;
  // Node prints the subject one RDN a line in DER order; RFC 4514 writes them last first, comma-separated.
  const rdns = new X509Certificate(raw).subject.split('\n').filter((l) => l !== '');
  return {
    subjectDn: normalizeDn(rdns.reverse().join(',')),
    thumbprint: createHash('sha256').update(raw).digest('base64url'),
  };
}

/** Attribute types upper-cased, values as written: registration and certificate compare in one form. */
export function normalizeDn(dn: string): string {
  return dn
    .split(',')
    .map((rdn) => {
      const eq = rdn.indexOf('=');
      return `${rdn.slice(0, eq).trim().toUpperCase()}=${rdn.slice(eq + 1)}`;
    })
    .join(',');
}

/**
 * At the token endpoint: a partner registered with `mtls` must present a certificate with its subject DN (RFC 8705
 * §2.1.2 tls_client_auth_subject_dn); returns the thumbprint to bind its token to, or undefined for other partners.
 */
export function certificateOfClient(
  partner: PartnerDef,
  presented: PresentedCertificate | undefined,
): string | undefined {
  if (partner.mtls === undefined) return undefined;
  if (presented === undefined)
    throw new OAuthError(
      'invalid_client',
      'E_PARTNER_AUTH',
      'client_certificate',
      'this client authenticates with mutual TLS (RFC 8705): present its client certificate',
    );
  if (presented.subjectDn !== normalizeDn(partner.mtls.subjectDn))
    throw new OAuthError(
      'invalid_client',
      'E_PARTNER_AUTH',
      'client_certificate',
      "the client certificate's subject is not the one registered for this client",
    );
  return presented.thumbprint;
}

/**
 * Why a verified access token may not be used over this connection (RFC 8705 §3: a bound token needs the same
 * certificate), or undefined when it may.
 */
export function bindingRefusal(payload: JWTPayload, presented: PresentedCertificate | undefined): string | undefined {
  const cnf = payload['cnf'];
  if (cnf === undefined) return undefined;
  const x5t = typeof cnf === 'object' && cnf !== null ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
  if (typeof x5t !== 'string') return 'the access token has a confirmation (cnf) method this gateway does not use';
  if (presented === undefined)
    return 'the access token is bound to a client certificate (RFC 8705) and this connection presented none';
  const a = Buffer.from(x5t);
  const b = Buffer.from(presented.thumbprint);
  if (a.length !== b.length || !timingSafeEqual(a, b))
    return 'the access token is bound to another client certificate than this connection presented';
  return undefined;
}
