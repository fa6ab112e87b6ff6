// The element paths a delivery disclosed, for the accounting of disclosures ("a brief description of the protected
// health information disclosed", 45 CFR 164.528(b)(2)(iii)): every path that holds a value in the projected copy
// the recipient received — so exactly what its profile let through for this resource, not what it could have —
// in dotted FHIR form without indices (`Patient.name.family`), sorted, each once. Names only, never values.
// A data-absent-reason `masked` mark (src/projection/masked.ts) says an element was withheld: it is not a disclosure.
import { formatPath } from '../fhir/json-path.js';
import { isJsonNumber } from '../wire/json.js';
import { DATA_ABSENT_REASON_URL } from '../projection/masked.js';

function isMaskedMark(node: object): boolean {
  const keys = Object.keys(node);
  if (keys.length !== 1 || keys[0] !== 'extension') return false;
  const ext = (node as { extension?: unknown }).extension;
  if (!Array.isArray(ext) || ext.length !== 1) return false;
  const e = ext[0] as { url?: unknown; valueCode?: unknown } | null;
  return e?.url === DATA_ABSENT_REASON_URL && e.valueCode === 'masked';
}

export function disclosedElements(projected: Readonly<Record<string, unknown>>): string[] {
  const root = typeof projected['resourceType'] === 'string' ? projected['resourceType'] : 'Resource';
  const out = new Set<string>();
  const walk = (node: unknown, path: string[]): void => {
    if (Array.isArray(node)) {
      for (const item of node) walk(item, path);
      return;
    }
    if (typeof node === 'object' && node !== null && !isJsonNumber(node)) {
      if (isMaskedMark(node)) return;
      for (const [k, v] of Object.entries(node)) {
        if (k === 'resourceType') continue;
        walk(v, [...path, k]);
      }
      return;
    }
    if (path.length > 1) out.add(formatPath(path));
  };
  walk(projected, [root]);
  return [...out].sort();
}
