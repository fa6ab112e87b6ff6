// `/.well-known/smart-configuration` (SMART App Launch 2.0 §Conformance, "Metadata"): what a backend-services client
// needs to authenticate — the token endpoint, client_credentials with private_key_jwt, the assertion algorithms, the
// system scopes the gateway can grant. Only what the gateway does; no authorization endpoint (no user launch).
import type { Catalog } from '../catalog/types.js';
import { ASSERTION_ALGORITHMS } from './assertion.js';

export function smartConfiguration(
  catalog: Catalog,
  urls: { baseUrl: string; tokenUrl: string },
): Record<string, unknown> {
  const scopes = new Set<string>();
  for (const s of catalog.services.values()) for (const scope of s.partner?.scopes ?? []) scopes.add(scope);
  return {
    issuer: urls.baseUrl,
    jwks_uri: `${urls.baseUrl}/.well-known/jwks.json`,
    token_endpoint: urls.tokenUrl,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    scopes_supported: [...scopes].sort(),
    capabilities: ['client-confidential-asymmetric', 'permission-v2'],
    // RFC 8705 §3.3: it issues certificate-bound tokens (to partners registered with mtls).
    ...([...catalog.services.values()].some((s) => s.partner?.mtls !== undefined)
      ? { tls_client_certificate_bound_access_tokens: true }
      : {}),
  };
}
