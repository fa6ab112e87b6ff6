// Keeps local references (FHIR R4 §2.3.0.3 `#id`, a resource contained in the same resource) from dangling after
// projection: when a contained resource was removed, every `reference` pointing at it is removed too, together with
// any object (and extension) left without content. `display` stays if the profile allowed it.
import { isJsonNumber } from '../wire/json.js';
import type { Json } from './project.js';

function strip(value: unknown, removed: ReadonlySet<string>): boolean {
  if (typeof value !== 'object' || value === null || isJsonNumber(value)) return false;
  if (Array.isArray(value)) {
    const sparse = value.includes(null);
    for (let i = value.length - 1; i >= 0; i--) {
      if (!strip(value[i], removed)) continue;
      if (sparse) value[i] = null;
      else value.splice(i, 1);
    }
    return value.every((v) => v === null);
  }
  const obj = value as Json;
  let changed = false;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (key === 'reference' && typeof v === 'string' && v.startsWith('#') && removed.has(v.slice(1))) {
      delete obj['reference'];
      delete obj['_reference'];
      changed = true;
    } else if (typeof v === 'object' && v !== null && strip(v, removed)) {
      delete obj[key];
      changed = true;
    }
  }
  const keys = Object.keys(obj);
  // An Extension left with only its url has lost its value.
  return keys.length === 0 || (changed && keys.length === 1 && keys[0] === 'url');
}

/** Removes, in place on a freshly projected resource, references to contained resources whose ids are in `removed`. */
export function stripLocalRefs(out: Json, removed: ReadonlySet<string>): void {
  if (removed.size > 0) strip(out, removed);
}
