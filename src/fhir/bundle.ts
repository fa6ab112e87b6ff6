// Splits a FHIR R4 Bundle (transaction, batch, collection, document, message, …) into one publishable
// resource per entry. Entries reference each other by their `fullUrl`, commonly `urn:uuid:` or
// `urn:oid:` (http://hl7.org/fhir/R4/bundle.html#references); once an entry travels on its own those
// references point nowhere, so each is rewritten to `<Type>/<id>` of the entry it names. An entry
// resource without an id whose fullUrl is such a URN gets the URN's value as its id (as a server does
// on a transaction create). A nested Bundle is published as one Bundle resource, untouched inside:
// its references resolve among its own entries. Pure: the input is not mutated.
import { BrokerError } from '../wire/errors.js';
import { formatPath } from './json-path.js';
import type { FhirResource } from './resource.js';
import { hasResourceType, isJsonObject } from './resource.js';

export type BundleEntryResult =
  | {
      readonly ok: true;
      /** Position in `Bundle.entry`. */
      readonly index: number;
      /** `Bundle.entry[<index>]`. */
      readonly path: string;
      /** A copy of the entry's resource with in-bundle references rewritten (and id filled in). */
      readonly resource: FhirResource;
      readonly entry?: never;
      readonly error?: never;
    }
  | {
      readonly ok: false;
      readonly index: number;
      readonly path: string;
      /** The original entry JSON, for the caller to send as raw input so the broker quarantines it. */
      readonly entry: unknown;
      /** E_BUNDLE_INVALID naming the entry or the element at fault. */
      readonly error: BrokerError;
      readonly resource?: never;
    };

const URN = /^urn:(uuid|oid):(.+)$/;
const ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** The id an entry's URN fullUrl implies (`urn:uuid:<uuid>` → `<uuid>`), if it is a valid FHIR id. */
function urnId(fullUrl: unknown): string | undefined {
  if (typeof fullUrl !== 'string') return undefined;
  const value = URN.exec(fullUrl)?.[2];
  return value !== undefined && ID.test(value) ? value : undefined;
}

/**
 * One result per `Bundle.entry`, in order. Throws E_BUNDLE_INVALID only when the input is not a Bundle
 * at all (or `entry` is not an array); every per-entry problem is a failed result instead.
 */
export function splitBundle(bundle: unknown): BundleEntryResult[] {
  if (!hasResourceType(bundle) || bundle.resourceType !== 'Bundle') {
    throw new BrokerError('E_BUNDLE_INVALID', 'Bundle: the input is not a Bundle resource', { path: 'Bundle' });
  }
  const entries = bundle['entry'];
  if (entries === undefined) return [];
  if (!Array.isArray(entries))
    throw new BrokerError('E_BUNDLE_INVALID', 'Bundle.entry: must be a JSON array', { path: 'Bundle.entry' });

  // fullUrl (URN) → `<Type>/<id>`; the first entry claiming a fullUrl owns it.
  const targets = new Map<string, string>();
  const duplicates = new Set<number>();
  entries.forEach((entry: unknown, i) => {
    if (!isJsonObject(entry) || !hasResourceType(entry['resource'])) return;
    const fullUrl = entry['fullUrl'];
    if (typeof fullUrl !== 'string' || !URN.test(fullUrl)) return;
    if (targets.has(fullUrl)) {
      duplicates.add(i);
      return;
    }
    const { resource } = entry;
    const id = typeof resource.id === 'string' ? resource.id : urnId(fullUrl);
    if (id !== undefined) targets.set(fullUrl, `${resource.resourceType}/${id}`);
  });

  return entries.map((entry: unknown, index): BundleEntryResult => {
    const path = `Bundle.entry[${index}]`;
    const failed = (segments: readonly (string | number)[], what: string): BundleEntryResult => {
      const at = formatPath(['Bundle', 'entry', index, ...segments]);
      return {
        ok: false,
        index,
        path,
        entry,
        error: new BrokerError('E_BUNDLE_INVALID', `${at}: ${what}`, { path: at }),
      };
    };
    if (!isJsonObject(entry)) return failed([], 'the entry is not a JSON object');
    const resource = entry['resource'];
    if (resource === undefined)
      return failed([], 'the entry has no resource (a request-only entry, e.g. DELETE or GET, cannot be published)');
    if (!hasResourceType(resource))
      return failed(['resource'], 'not a resource (a JSON object with a string resourceType)');
    if (duplicates.has(index)) return failed(['fullUrl'], 'the fullUrl of an earlier entry again');

    const id = resource.id === undefined ? urnId(entry['fullUrl']) : undefined;
    if (resource.resourceType === 'Bundle') {
      return { ok: true, index, path, resource: id === undefined ? resource : { ...resource, id } };
    }
    const segments: (string | number)[] = ['resource'];
    const rewritten = rewrite(resource, targets, segments);
    if (rewritten === UNRESOLVED) return failed(segments, 'references a urn: fullUrl that no entry of the bundle has');
    const copy = rewritten as FhirResource;
    return { ok: true, index, path, resource: id === undefined ? copy : { ...copy, id } };
  });
}

const UNRESOLVED: unique symbol = Symbol('unresolved');

/**
 * A deep copy of `node` with every `reference` string that is an in-bundle URN replaced by its target.
 * On a URN no entry has, returns UNRESOLVED and leaves `segments` at the offending `reference`.
 */
function rewrite(node: unknown, targets: ReadonlyMap<string, string>, segments: (string | number)[]): unknown {
  if (Array.isArray(node)) {
    const out: unknown[] = new Array<unknown>(node.length);
    for (let i = 0; i < node.length; i++) {
      segments.push(i);
      const item = rewrite(node[i], targets, segments);
      if (item === UNRESOLVED) return UNRESOLVED;
      segments.pop();
      out[i] = item;
    }
    return out;
  }
  if (!isJsonObject(node)) return node;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(node)) {
    const value = node[key];
    segments.push(key);
    if (key === 'reference' && typeof value === 'string' && URN.test(value)) {
      const target = targets.get(value);
      if (target === undefined) return UNRESOLVED;
      out[key] = target;
    } else {
      const item = rewrite(value, targets, segments);
      if (item === UNRESOLVED) return UNRESOLVED;
      // JSON.parse makes `__proto__` an own property; plain assignment would set the prototype instead.
      if (key === '__proto__')
        Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
      else out[key] = item;
    }
    segments.pop();
  }
  return out;
}
