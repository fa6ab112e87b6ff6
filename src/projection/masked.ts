// Marks withheld top-level elements with the data-absent-reason extension, code `masked`
// (http://hl7.org/fhir/StructureDefinition/data-absent-reason, FHIR R4 §2.6.2.1 for primitives), so a subscriber can
// tell "withheld by policy" from "never recorded". This reveals that the element existed, which is the point.
import { choiceJsonName, fhirElements, isPrimitiveType } from '../fhir/elements.js';
import type { Json } from './project.js';

export const DATA_ABSENT_REASON_URL = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';

interface Shape {
  readonly primitive: boolean;
  readonly array: boolean;
}

/** Top-level elements never marked: structural or not representable by an extension-only element. */
const NEVER_MARKED = new Set(['id', 'meta', 'text', 'contained', 'extension', 'modifierExtension']);

export type MaskTable = Readonly<Record<string, Shape>>;

/** JSON property name → shape, for every top-level element of a resource type that may be marked. */
export function maskTable(resourceType: string): MaskTable {
  const table = Object.create(null) as Record<string, Shape>;
  const defs = fhirElements().types[resourceType] ?? {};
  for (const [name, d] of Object.entries(defs)) {
    if (NEVER_MARKED.has(name)) continue;
    const array = d.m === 1;
    if (d.x === 1) {
      for (const t of d.t) table[choiceJsonName(name, t)] = { primitive: isPrimitiveType(t), array };
    } else if (d.t[0] !== undefined) {
      table[name] = { primitive: isPrimitiveType(d.t[0]), array };
    }
  }
  return Object.freeze(table);
}

function marker(): Json {
  return { extension: [{ url: DATA_ABSENT_REASON_URL, valueCode: 'masked' }] };
}

/**
 * Adds a marker to `out` for each element of `input` that `out` lacks: `_x: {extension: [dar]}` for a primitive
 * `x`, `x: {extension: [dar]}` for a complex one, one such item in an array for a repeating element. A choice
 * element keeps the JSON name it had (`_deceasedBoolean`).
 */
export function markWithheld(input: Json, out: Json, table: MaskTable): void {
  for (const key of Object.keys(input)) {
    const name = key.charCodeAt(0) === 95 /* _ */ ? key.slice(1) : key;
    const shape = table[name];
    if (shape === undefined || Object.hasOwn(out, name) || Object.hasOwn(out, '_' + name)) continue;
    out[shape.primitive ? '_' + name : name] = shape.array ? [marker()] : marker();
  }
}
