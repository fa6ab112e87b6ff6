// The resource types an answer holds, nested Bundles' entries included (a service may keep a Bundle it received
// whole, e.g. a document): what the desk compares with the types the registry says the service holds.
import { hasResourceType, isJsonObject, type FhirResource } from '../../fhir/resource.js';

export function typesCovered(resources: readonly FhirResource[]): string[] {
  const out = new Set<string>();
  const visit = (r: FhirResource, depth: number): void => {
    out.add(r.resourceType);
    const entry = r.resourceType === 'Bundle' && depth < 8 ? r['entry'] : undefined;
    if (!Array.isArray(entry)) return;
    for (const e of entry) if (isJsonObject(e) && hasResourceType(e['resource'])) visit(e['resource'], depth + 1);
  };
  for (const r of resources) visit(r, 0);
  return [...out].sort();
}
