// The CapabilityStatement at `/metadata` (FHIR R4 capabilitystatement.html), generated from the catalog: what this
// gateway supports and nothing more: SMART Backend Services authorization (rest.security, with the token endpoint
// in the oauth-uris extension); per resource type a partner exchanges, the partner profiles that shape it
// (supportedProfile), `create` where a partner's scopes allow it (system/<Type>.c) and `read` where a partner
// receives the type and may read it (system/<Type>.r: its notified copies, GET /[type]/[id]); and, when any partner may
// create, the system interactions transaction and batch and the $process-message operation (inbound.ts); the read
// of the partner profiles as StructureDefinitions; Subscriptions with their topics (Subscriptions Backport IG).
import type { CapabilityStatement, CapabilityStatementRestResource } from 'fhir/r4.js';
import { parseScope } from '../catalog/partner.js';
import type { Catalog } from '../catalog/types.js';
import { BACKPORT_SUBSCRIPTION, TOPIC_CANONICAL, allPartnerTopics } from './subscriptions/model.js';

const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

export function capabilityStatement(
  catalog: Catalog,
  urls: { baseUrl: string; tokenUrl: string },
  date: string,
  version: string,
): CapabilityStatement {
  const types = new Map<string, Set<string>>();
  const creatable = new Set<string>();
  const readable = new Set<string>();
  for (const service of catalog.services.values()) {
    if (service.partner === undefined) continue;
    for (const scope of service.partner.scopes) {
      const parsed = parseScope(scope);
      const type = parsed?.resourceType;
      if (type === undefined) continue;
      if (parsed?.permissions.includes('c') === true) creatable.add(type);
      const receives = catalog.topics.get(type)?.subscribers.some((s) => s.service === service.id) === true;
      if (receives && parsed?.permissions.includes('r') === true) readable.add(type);
      const profiles = types.get(type) ?? new Set<string>();
      types.set(type, profiles);
      // The profile that shapes what this partner receives of the type (its minimum-necessary contract).
      const sub = catalog.topics.get(type)?.subscribers.find((s) => s.service === service.id);
      const url = sub === undefined ? undefined : catalog.profiles.get(sub.profile)?.url;
      if (url !== undefined) profiles.add(url);
    }
  }
  const resource: CapabilityStatementRestResource[] = [...types]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([type, profiles]) => ({
      // The catalog admits only FHIR R4 resource type names as topics (compile.ts).
      type: type as CapabilityStatementRestResource['type'],
      ...(profiles.size === 0 ? {} : { supportedProfile: [...profiles].sort() }),
      ...(creatable.has(type) || readable.has(type)
        ? {
            interaction: [
              ...(creatable.has(type) ? [{ code: 'create' as const }] : []),
              ...(readable.has(type) ? [{ code: 'read' as const }] : []),
            ],
          }
        : {}),
    }));
  // R4 topic-based Subscriptions (Subscriptions Backport IG): the topics partners may subscribe to, by canonical.
  const topics = allPartnerTopics(catalog);
  if (topics.length > 0)
    resource.push({
      type: 'Subscription',
      profile: BACKPORT_SUBSCRIPTION,
      extension: topics.map((url) => ({ url: TOPIC_CANONICAL, valueCanonical: url })),
      interaction: [{ code: 'create' }, { code: 'read' }, { code: 'delete' }],
      operation: [
        {
          name: 'status',
          definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status',
        },
        {
          name: 'events',
          definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events',
        },
      ],
    });
  // The partner profiles themselves, readable at /StructureDefinition/[id] (src/gateway/profiles/routes.ts).
  if (resource.some((r) => r.supportedProfile !== undefined))
    resource.push({
      type: 'StructureDefinition',
      interaction: [{ code: 'read' }],
      profile: 'http://hl7.org/fhir/StructureDefinition/StructureDefinition',
    });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date,
    publisher: 'phi-broker',
    kind: 'instance',
    software: { name: 'phi-broker partner gateway', version },
    implementation: { description: 'phi-broker partner FHIR gateway', url: urls.baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    rest: [
      {
        mode: 'server',
        security: {
          extension: [{ url: OAUTH_URIS, extension: [{ url: 'token', valueUri: urls.tokenUrl }] }],
          service: [
            {
              coding: [
                { system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' },
              ],
            },
          ],
          description: 'SMART Backend Services (client_credentials with private_key_jwt); system scopes only',
        },
        ...(resource.length === 0 ? {} : { resource }),
        ...(creatable.size === 0
          ? {}
          : {
              interaction: [{ code: 'transaction' as const }, { code: 'batch' as const }],
              operation: [
                {
                  name: 'process-message',
                  definition: 'http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message',
                },
              ],
            }),
      },
    ],
  };
}
