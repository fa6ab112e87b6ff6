// Bundle.entry.fullUrl for the Bundles phi-broker assembles (FHIR R4 bundle.html: each entry SHALL have one; without
// a server base it is a `urn:uuid:`). Name-based (RFC 9562 §5.5, UUID version 5 over SHA-1), so the same resource in
// the same scope gets the same fullUrl on every export, and the UUID reveals nothing of the name.
import { createHash } from 'node:crypto';

/** phi-broker's namespace: the v5 UUID of `urn:phi-broker` in RFC 9562's URL namespace (f7f126fa-575e-5783-beee-5ca118f2ab80). */
const NAMESPACE = Buffer.from('f7f126fa575e5783beee5ca118f2ab80', 'hex');

/** RFC 9562 version-5 UUID of `name` in phi-broker's namespace. */
export function nameBasedUuid(name: string): string {
  const hash = createHash('sha1').update(NAMESPACE).update(name, 'utf8').digest();
  hash[6] = ((hash[6] ?? 0) & 0x0f) | 0x50; // version 5
  hash[8] = ((hash[8] ?? 0) & 0x3f) | 0x80; // RFC 9562 variant
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** `urn:uuid:` of the entry at `index` of a Bundle in `scope` (e.g. the access request and answering service). */
export function entryFullUrl(
  scope: string,
  resource: { readonly resourceType?: unknown; readonly id?: unknown },
  index: number,
): string {
  const id = typeof resource.id === 'string' ? resource.id : `#${index}`;
  return `urn:uuid:${nameBasedUuid(`${scope}|${String(resource.resourceType)}/${id}`)}`;
}
