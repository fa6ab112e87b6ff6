// The FHIR R4 (4.0.1) element index: for every resource, datatype and backbone element, its child elements
// with their types, cardinality and choice ([x]) flag. Generated from the HL7 StructureDefinitions by
// scripts/gen-fhir-r4-elements.mjs and committed (src/fhir/r4-elements.json).
import { readFileSync } from 'node:fs';

export interface ElementDef {
  /** Type codes: primitive (`string`, `date` …), complex datatype (`HumanName`), `Resource`, or a backbone path (`Patient.contact`). */
  readonly t: readonly string[];
  /** 1 when the element repeats (max > 1). */
  readonly m?: 1;
  /** 1 when the element is a choice `name[x]`; JSON names are `name` + capitalised type code. */
  readonly x?: 1;
  /** 1 when min >= 1. */
  readonly r?: 1;
}

export interface FhirElementIndex {
  readonly fhirVersion: string;
  readonly source: string;
  /** Primitive type code → JSON type of its value. */
  readonly primitives: Readonly<Record<string, 'string' | 'number' | 'boolean'>>;
  /** Concrete resource type names. */
  readonly resources: readonly string[];
  /** Type or backbone path → child element name (without `[x]`) → definition. */
  readonly types: Readonly<Record<string, Readonly<Record<string, ElementDef>>>>;
}

let cached: FhirElementIndex | undefined;

/** Loads the index once per process. */
export function fhirElements(): FhirElementIndex {
  cached ??= Object.freeze(
    JSON.parse(readFileSync(new URL('./r4-elements.json', import.meta.url), 'utf8')) as FhirElementIndex,
  );
  return cached;
}

let resourceSet: ReadonlySet<string> | undefined;

export function isResourceType(name: string): boolean {
  resourceSet ??= new Set(fhirElements().resources);
  return resourceSet.has(name);
}

export function isPrimitiveType(code: string): boolean {
  return Object.hasOwn(fhirElements().primitives, code);
}

/** `value` + `Quantity` → `valueQuantity` (FHIR JSON choice naming). */
export function choiceJsonName(base: string, typeCode: string): string {
  return base + typeCode.charAt(0).toUpperCase() + typeCode.slice(1);
}
