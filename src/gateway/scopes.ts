// SMART v2 scopes a token request asks for (App Launch 2.0 "Scopes for requesting clinical data"), checked against
// the partner's registration: each asked scope must lie within a registered one — same resource type, permission
// letters a subset — so a grant is never wider than the catalog (whose scopes are never wider than the topics).
import { parseScope } from '../catalog/partner.js';
import type { Catalog, PartnerDef } from '../catalog/types.js';
import { OAuthError } from './oauth-error.js';

/** The scopes to grant for the request's `scope` parameter; throws invalid_scope (E_PARTNER_SCOPE) otherwise. */
export function grantScopes(requested: string, partner: PartnerDef): readonly string[] {
  const asked = requested.split(' ').filter((s) => s !== '');
  if (asked.length === 0)
    throw new OAuthError('invalid_scope', 'E_PARTNER_SCOPE', 'scope', 'expected at least one scope');
  const registered = partner.scopes.map(parseScope);
  for (const scope of asked) {
    const p = parseScope(scope);
    const within =
      p !== undefined &&
      registered.some(
        (r) =>
          r !== undefined &&
          r.resourceType === p.resourceType &&
          [...p.permissions].every((c) => r.permissions.includes(c)),
      );
    // The scope string is the client's, but it is a scope grammar (a type and letters), never patient data.
    if (!within)
      throw new OAuthError(
        'invalid_scope',
        'E_PARTNER_SCOPE',
        'scope',
        p === undefined ? 'not a SMART v2 system scope' : `${scope} is not registered for this client`,
      );
  }
  return [...new Set(asked)];
}

/** The partners the gateway publishes for: those with at least one create (`c`) scope, by service id. */
export function creatingPartners(catalog: Catalog): string[] {
  return [...catalog.services.values()]
    .filter((s) => s.partner?.scopes.some((scope) => parseScope(scope)?.permissions.includes('c') === true))
    .map((s) => s.id)
    .sort();
}
