// The JSON shape of a FHIR R4 resource as the broker handles it: a plain object with a string
// `resourceType` (FHIR R4 JSON representation, http://hl7.org/fhir/R4/json.html#resources). Only
// `validateResource` turns unknown input into this type. A number leaf may be a JsonNumber (its lexeme,
// src/wire/json.ts): an object in JS, a leaf in JSON.
import { isJsonNumber } from '../wire/json.js';

export interface FhirResource {
  readonly resourceType: string;
  readonly id?: string;
  readonly [element: string]: unknown;
}

/** A plain JSON object (not null, not an array, not a number leaf). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isJsonNumber(value);
}

/** An object with a string `resourceType`; says nothing about validity. */
export function hasResourceType(value: unknown): value is FhirResource {
  return isJsonObject(value) && typeof value['resourceType'] === 'string';
}
