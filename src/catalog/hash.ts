// The catalog's fingerprint: SHA-256 (hex) over the RFC 8785 (JCS) canonical JSON of everything the catalog
// declares, recorded in the audit trail at start so a delivery can be tied to the policy that shaped it.
// Where a declaration was written (`file`) is not policy and is left out: moving a service between files keeps
// the hash; changing any id, profile path, purpose or flag changes it.
import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import type { Catalog } from './types.js';

// canonicalize is CommonJS (`module.exports = fn`) typed as an ES default export; Node hands ESM the function itself.
const canonicalize = ((canonicalizeModule as unknown as { default?: unknown }).default ?? canonicalizeModule) as (
  input: unknown,
) => string | undefined;

/** The canonical JSON the hash is taken over (stable key order, maps as objects keyed by id). */
export function catalogCanonicalJson(catalog: Omit<Catalog, 'hash'>): string {
  const strip = <T extends { readonly file: string }>(v: T): Omit<T, 'file'> => {
    const { file: _file, ...rest } = v;
    return rest;
  };
  const form = {
    format: 'phi-broker-catalog/1',
    services: Object.fromEntries([...catalog.services].map(([id, s]) => [id, strip(s)])),
    topics: Object.fromEntries([...catalog.topics].map(([t, d]) => [t, strip(d)])),
    profiles: Object.fromEntries([...catalog.profiles].map(([id, p]) => [id, strip(p)])),
    classification: catalog.classification,
    patients: catalog.patients,
    // Only when declared, so a catalog without access requesters keeps the hash it had before they existed.
    ...(catalog.access.requesters.length === 0
      ? {}
      : { access: { requesters: [...catalog.access.requesters].sort() } }),
    // The key directory's trust anchor, when pinned: which operator may change every party's keys.
    ...(catalog.keyDirectory === undefined ? {} : { keyDirectory: catalog.keyDirectory }),
  };
  const json = canonicalize(form);
  if (json === undefined) throw new TypeError('catalog has no JSON form');
  return json;
}

export function catalogHash(catalog: Omit<Catalog, 'hash'>): string {
  return createHash('sha256').update(catalogCanonicalJson(catalog), 'utf8').digest('hex');
}
