// The assembled answer to a right-of-access request: one FHIR R4 Bundle of type `collection`
// (http://hl7.org/fhir/R4/bundle.html) holding every answered service's resources, in service order, each entry with a name-based fullUrl. Each
// resource keeps its content; where it has no `meta.source`, that is set to the service that answered
// (meta.source: "a uri that identifies the source system of the resource"), so the reader can tell where
// each came from. Built from the sealed answers by whoever holds the broker secrets.
import type { Bundle } from 'fhir/r4.js';
import { entryFullUrl } from '../../fhir/full-url.js';
import type { FhirResource } from '../../fhir/resource.js';
import type { AccessRequest } from '../protocol/request.js';
import { openAnswer } from './sealing.js';
import type { AccessStore } from './store.js';
import { BrokerError } from '../../wire/errors.js';
import { parseJsonText } from '../../wire/json.js';

export const SOURCE_PREFIX = 'urn:phi-broker:service:';

export function assembleBundle(
  request: AccessRequest,
  answers: ReadonlyMap<string, readonly FhirResource[]>,
  now: number,
): Bundle {
  const entry: NonNullable<Bundle['entry']> = [];
  for (const service of [...answers.keys()].sort()) {
    for (const [i, resource] of (answers.get(service) ?? []).entries()) {
      const meta = (resource['meta'] ?? {}) as Record<string, unknown>;
      const sourced =
        meta['source'] === undefined
          ? { ...resource, meta: { ...meta, source: `${SOURCE_PREFIX}${service}` } }
          : resource;
      entry.push({
        fullUrl: entryFullUrl(`access:${request.id}:${service}`, resource, i),
        resource: sourced as unknown as NonNullable<NonNullable<Bundle['entry']>[number]['resource']>,
      });
    }
  }
  return {
    resourceType: 'Bundle',
    id: request.id,
    type: 'collection',
    timestamp: new Date(now).toISOString(),
    ...(entry.length === 0 ? {} : { entry }),
  } as Bundle;
}

/** Opens every answered service's sealed answer and assembles the Bundle. */
export async function loadBundle(
  store: AccessStore,
  key: Uint8Array,
  request: AccessRequest,
  now: number,
): Promise<Bundle> {
  const answers = new Map<string, FhirResource[]>();
  for (const [service, s] of Object.entries(request.services)) {
    if (s.state !== 'answered') continue;
    const sealed = await store.getAnswer(request.id, service);
    if (sealed === undefined)
      throw new BrokerError(
        'E_STORED_INVALID',
        `the answer of ${service} to ${request.id} is missing from the answer store`,
        { path: `services.${service}` },
      );
    const parsed = parseJsonText(openAnswer(key, request.id, service, sealed));
    if (!('value' in parsed))
      throw new BrokerError('E_STORED_INVALID', `the stored answer of ${service} to ${request.id} is not JSON`, {
        path: `services.${service}`,
      });
    answers.set(service, parsed.value as FhirResource[]);
  }
  return assembleBundle(request, answers, now);
}
