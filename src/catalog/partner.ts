// The `partner:` block of an external service, checked against the rest of the catalog: only an `external: true`
// service may have one; client ids and key ids are unique; and every SMART v2 scope (App Launch 2.0 §scopes,
// `system/<Type>.<cruds>`) is one the topics back — `c` only for a type the service publishes, `r`/`s` only for a
// type it receives — so a partner can never be granted more than the catalog lets it exchange. Its keys are inline
// (`jwks`) or at its JWKS URL (`jwksUrl`), exactly one.
import type { CatalogIssue } from './issues.js';
import type { PartnerInput } from './schema.js';
import type { PartnerDef, PartnerJwk, TopicDef } from './types.js';
import type { YamlSource } from './yaml-source.js';

/** A SMART v2 scope the gateway understands: system-level, one resource type, permissions in `cruds` order. */
const SCOPE = /^system\/([A-Z][A-Za-z]+)\.(c?r?u?d?s?)$/;

export interface ParsedScope {
  readonly resourceType: string;
  /** The permission letters, in `cruds` order. */
  readonly permissions: string;
}

/** `system/Coverage.rs` → { resourceType: 'Coverage', permissions: 'rs' }; undefined for anything else. */
export function parseScope(scope: string): ParsedScope | undefined {
  const m = SCOPE.exec(scope);
  if (m === null || m[2] === '') return undefined;
  return { resourceType: m[1] as string, permissions: m[2] as string };
}

/** Where a service's partner block was declared, for issues. */
export interface PartnerAt {
  readonly service: string;
  readonly external: boolean;
  readonly input: PartnerInput;
  readonly source: YamlSource;
  /** Index in the file's `services` list. */
  readonly index: number;
}

/** The compiled partner blocks by service id, or the issues found. */
export function checkPartners(
  declared: readonly PartnerAt[],
  topics: ReadonlyMap<string, TopicDef>,
): { defs: Map<string, PartnerDef>; issues: CatalogIssue[] } {
  const issues: CatalogIssue[] = [];
  const defs = new Map<string, PartnerDef>();
  const clientIds = new Map<string, string>();
  for (const { service, external, input, source, index } of declared) {
    const at = (...rest: PropertyKey[]): PropertyKey[] => ['services', index, 'partner', ...rest];
    const before = issues.length;
    if (!external)
      issues.push(
        source.issue(
          at(),
          `only an external service (external: true) is a partner of the gateway; '${service}' is not`,
        ),
      );
    const first = clientIds.get(input.clientId);
    if (first !== undefined)
      issues.push(source.issue(at('clientId'), `client id '${input.clientId}' is already used by '${first}'`));
    else clientIds.set(input.clientId, service);
    // SMART Backend Services registers a client's keys either as a JWK Set or as its JWKS URL: one, not both.
    if ((input.jwks === undefined) === (input.jwksUrl === undefined))
      issues.push(
        source.issue(
          at(input.jwks === undefined ? 'jwks' : 'jwksUrl'),
          input.jwks === undefined
            ? 'expected the public keys: jwks (inline) or jwksUrl (where the partner serves them)'
            : 'expected either jwks or jwksUrl, not both',
        ),
      );
    const kids = new Set<string>();
    (input.jwks?.keys ?? []).forEach((k, i) => {
      if (kids.has(k.kid)) issues.push(source.issue(at('jwks', 'keys', i, 'kid'), `kid '${k.kid}' is listed twice`));
      kids.add(k.kid);
    });
    // A subject of phi-broker's own organisation must be OU=partner: the other OUs are NATS identities (src/tls).
    const dn = input.mtls?.subjectDn.split(',').map((rdn) => rdn.toUpperCase());
    if (dn?.includes('O=PHI-BROKER') === true && !dn.includes('OU=PARTNER'))
      issues.push(
        source.issue(
          at('mtls', 'subjectDn'),
          'a subject with O=phi-broker must have OU=partner: the other units are NATS identities, never a partner',
        ),
      );
    const scopes = new Set<string>();
    input.scopes.forEach((scope, i) => {
      const where = at('scopes', i);
      if (scopes.has(scope)) issues.push(source.issue(where, `scope '${scope}' is listed twice`));
      scopes.add(scope);
      const parsed = parseScope(scope);
      if (parsed === undefined) {
        issues.push(
          source.issue(
            where,
            `'${scope}' is not a SMART v2 system scope: expected system/<ResourceType>.<permissions in cruds order>, e.g. system/Coverage.rs`,
          ),
        );
        return;
      }
      const topic = topics.get(parsed.resourceType);
      const publishes = topic?.publishers.includes(service) === true;
      const receives = topic?.subscribers.some((s) => s.service === service) === true;
      for (const p of parsed.permissions) {
        const allowed = p === 'c' ? publishes : p === 'r' || p === 's' ? receives : false;
        if (allowed) continue;
        const why =
          p === 'c'
            ? `'${service}' does not publish ${parsed.resourceType} (topics.${parsed.resourceType}.publishers)`
            : p === 'r' || p === 's'
              ? `'${service}' does not receive ${parsed.resourceType} (topics.${parsed.resourceType}.subscribers)`
              : `the gateway grants no '${p}' (update/delete): partners create (c), read and search (rs)`;
        issues.push(source.issue(where, `scope '${scope}' is wider than the catalog allows: ${why}`));
      }
    });
    if (issues.length > before) continue;
    defs.set(
      service,
      Object.freeze({
        clientId: input.clientId,
        ...(input.jwks === undefined
          ? {}
          : {
              jwks: Object.freeze({
                keys: Object.freeze(input.jwks.keys.map((k) => Object.freeze({ ...k }) as PartnerJwk)),
              }),
            }),
        ...(input.jwksUrl === undefined ? {} : { jwksUrl: input.jwksUrl }),
        ...(input.mtls === undefined ? {} : { mtls: Object.freeze({ ...input.mtls }) }),
        scopes: Object.freeze([...input.scopes]),
        rateLimit: Object.freeze({ ...input.rateLimit }),
        restHooks: Object.freeze([...input.restHooks]),
      }),
    );
  }
  return { defs, issues };
}
