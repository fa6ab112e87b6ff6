// The structural walk of a FHIR R4 JSON resource: every property at every depth must be an element the
// R4 StructureDefinitions define for its type (src/fhir/r4-elements.json), with the JSON shape the FHIR
// JSON representation prescribes (http://hl7.org/fhir/R4/json.html): arrays exactly for repeating
// elements, objects for complex types, the JSON type of each primitive, `_name` siblings for primitive
// ids/extensions (arrays aligned with their values, `null` as the gap filler), choice names `name<Type>`,
// `contained` and other Resource-typed elements checked by their own resourceType. Size limits are
// enforced in the same pass, so the walk stops as soon as an input exceeds what the limits allow.
// r4-core model validation ignores unknown properties (it would silently drop them); this walk is what
// rejects them. Errors name the concrete JSON path, never a value.
import { BrokerError } from '../wire/errors.js';
import { choiceJsonName, fhirElements, isResourceType } from './elements.js';
import { formatPath } from './json-path.js';
import type { ValidationLimits } from './limits.js';
import type { FhirResource } from './resource.js';
import { isJsonObject } from './resource.js';

/** A concrete FHIR R4 (4.0.1) resource type (the generator keeps non-R4 additions out of the index). */
export function isR4ResourceType(name: string): boolean {
  return isResourceType(name);
}

const DATE_TYPES: ReadonlySet<string> = new Set(['date', 'dateTime', 'instant']);
const YEAR_MONTH_DAY = /^(\d{4})-(\d{2})-(\d{2})/;

/**
 * FHIR's date regexes (and r4-core's) accept 1990-02-30; a date that names a day must name a real one
 * (ISO 8601, proleptic Gregorian). Partial dates (YYYY, YYYY-MM) and the format itself are left to r4-core.
 */
export function isCalendarDay(value: string): boolean {
  const m = YEAR_MONTH_DAY.exec(value);
  if (m === null) return true;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12 || day < 1 || day > 31) return true; // not the date format: r4-core says so
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
  return day <= days;
}

const PRIMITIVE = 0;
const EXTENSION_SIBLING = 1; // `_name`: the id/extensions of primitive `name`
const COMPLEX = 2;
const RESOURCE = 3;

interface Child {
  readonly kind: 0 | 1 | 2 | 3;
  /** Type code (`date`, `HumanName`), backbone path (`Patient.contact`) or `Resource`. */
  readonly type: string;
  readonly repeats: boolean;
  /** JSON type of a primitive's value. */
  readonly json: 'string' | 'number' | 'boolean' | undefined;
  /** For a choice element `name[x]`: its base name, and this property's form (`valueQuantity` for `_valueQuantity`). */
  readonly choice?: { readonly base: string; readonly form: string };
}

const compiled = new Map<string, ReadonlyMap<string, Child>>();

/** JSON property name → child definition for one type or backbone path, built once per process. */
function childrenOf(typeKey: string): ReadonlyMap<string, Child> {
  const hit = compiled.get(typeKey);
  if (hit !== undefined) return hit;
  const { types, primitives } = fhirElements();
  const defs = types[typeKey];
  if (defs === undefined) throw new BrokerError('E_INTERNAL', `element index has no entry for ${typeKey}`); // index bug, not input
  const map = new Map<string, Child>();
  for (const [name, def] of Object.entries(defs)) {
    const repeats = def.m === 1;
    for (const type of def.t) {
      const jsonName = def.x === 1 ? choiceJsonName(name, type) : name;
      const choice = def.x === 1 ? { choice: { base: name, form: jsonName } } : {};
      const json = primitives[type];
      if (json !== undefined) {
        map.set(jsonName, { kind: PRIMITIVE, type, repeats, json, ...choice });
        map.set('_' + jsonName, { kind: EXTENSION_SIBLING, type: 'Element', repeats, json: undefined, ...choice });
      } else {
        map.set(jsonName, {
          kind: type === 'Resource' ? RESOURCE : COMPLEX,
          type,
          repeats,
          json: undefined,
          ...choice,
        });
      }
    }
  }
  compiled.set(typeKey, map);
  return map;
}

interface Walk {
  readonly limits: ValidationLimits;
  /** Path segments from the root: property names and array indices. */
  readonly segs: (string | number)[];
  size: number;
}

function fail(
  w: Walk,
  code: 'E_UNKNOWN_ELEMENT' | 'E_FHIR_INVALID' | 'E_TOO_LARGE' | 'E_UNKNOWN_RESOURCE_TYPE',
  what: string,
): never {
  const path = formatPath(w.segs);
  throw new BrokerError(code, `${path}: ${what}`, { path });
}

function addSize(w: Walk, n: number): void {
  w.size += n;
  if (w.size > w.limits.maxResourceSize) {
    w.segs.length = 1; // report the resource, not the element where the running total happened to cross
    fail(w, 'E_TOO_LARGE', `resource larger than the limit (${w.limits.maxResourceSize})`);
  }
}

/**
 * Walks `resource` (whose resourceType the caller has checked with isR4ResourceType) and throws the
 * first problem found in document order: E_UNKNOWN_ELEMENT, E_UNKNOWN_RESOURCE_TYPE (nested),
 * E_FHIR_INVALID (JSON shape) or E_TOO_LARGE.
 */
export function checkStructure(resource: FhirResource, limits: ValidationLimits): void {
  const w: Walk = { limits, segs: [resource.resourceType], size: 0 };
  walkObject(w, resource, resource.resourceType, 1, true);
}

function walkObject(w: Walk, obj: Record<string, unknown>, typeKey: string, depth: number, isResource: boolean): void {
  if (depth > w.limits.maxDepth) fail(w, 'E_TOO_LARGE', `nested deeper than the limit (${w.limits.maxDepth})`);
  const children = childrenOf(typeKey);
  addSize(w, 2);
  let choices: Map<string, string> | undefined; // choice base name → the form seen first
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    w.segs.push(key);
    addSize(w, key.length + 4);
    const child = children.get(key);
    if (child?.choice !== undefined) {
      const first = (choices ??= new Map()).get(child.choice.base);
      if (first === undefined) choices.set(child.choice.base, child.choice.form);
      else if (first !== child.choice.form) {
        const other = formatPath([...w.segs.slice(0, -1), first]);
        fail(w, 'E_FHIR_INVALID', `a second form of the choice element ${child.choice.base}[x] (${other} is present)`);
      }
    }
    if (child === undefined) {
      if (!(isResource && key === 'resourceType'))
        fail(w, 'E_UNKNOWN_ELEMENT', `unknown element (FHIR R4 ${typeKey} defines no such element)`);
      addSize(w, (value as string).length + 2); // checked to be a string before the walk reached this object
    } else if (child.repeats) {
      if (!Array.isArray(value)) fail(w, 'E_FHIR_INVALID', 'must be a JSON array (the element repeats)');
      if (value.length === 0) fail(w, 'E_FHIR_INVALID', 'must not be an empty array');
      if (value.length > w.limits.maxArrayLength)
        fail(w, 'E_TOO_LARGE', `array longer than the limit (${w.limits.maxArrayLength})`);
      if (depth + 1 > w.limits.maxDepth) fail(w, 'E_TOO_LARGE', `nested deeper than the limit (${w.limits.maxDepth})`);
      addSize(w, value.length + 1);
      if (child.kind === PRIMITIVE || child.kind === EXTENSION_SIBLING) checkAligned(w, obj, key, value, child.kind);
      for (let i = 0; i < value.length; i++) {
        w.segs.push(i);
        walkValue(w, value[i], child, depth + 1, true);
        w.segs.pop();
      }
    } else {
      if (Array.isArray(value)) fail(w, 'E_FHIR_INVALID', 'must be a single value, not a JSON array');
      walkValue(w, value, child, depth, false);
    }
    w.segs.pop();
  }
}

/** `given` and `_given` are parallel arrays; `null` only fills a gap the other array covers. */
function checkAligned(
  w: Walk,
  obj: Record<string, unknown>,
  key: string,
  value: readonly unknown[],
  kind: number,
): void {
  const otherKey = kind === PRIMITIVE ? '_' + key : key.slice(1);
  const other = obj[otherKey];
  if (other === undefined) {
    if (value.includes(null))
      fail(w, 'E_FHIR_INVALID', `null item without a matching ${kind === PRIMITIVE ? '_' : ''}sibling array item`);
    return;
  }
  if (!Array.isArray(other) || other.length !== value.length)
    fail(w, 'E_FHIR_INVALID', 'array and its primitive-extension sibling differ in length');
  if (kind === PRIMITIVE) {
    for (let i = 0; i < value.length; i++) {
      if (value[i] === null && other[i] === null) {
        w.segs.push(i);
        fail(w, 'E_FHIR_INVALID', 'null in both the array and its primitive-extension sibling');
      }
    }
  }
}

function walkValue(w: Walk, value: unknown, child: Child, depth: number, inArray: boolean): void {
  if (value === null) {
    // In arrays the alignment check has already made sure the sibling covers this item.
    if (inArray && (child.kind === PRIMITIVE || child.kind === EXTENSION_SIBLING)) return addSize(w, 4);
    fail(w, 'E_FHIR_INVALID', 'must not be null');
  }
  switch (child.kind) {
    case PRIMITIVE: {
      if (typeof value !== child.json)
        fail(w, 'E_FHIR_INVALID', `must be a JSON ${child.json ?? 'value'} (FHIR ${child.type})`);
      if (typeof value === 'string') {
        if (value.length === 0) fail(w, 'E_FHIR_INVALID', 'must not be an empty string');
        if (value.length > w.limits.maxStringLength)
          fail(w, 'E_TOO_LARGE', `string longer than the limit (${w.limits.maxStringLength})`);
        if (DATE_TYPES.has(child.type) && !isCalendarDay(value))
          fail(w, 'E_FHIR_INVALID', `not a day of the calendar (FHIR ${child.type})`);
        return addSize(w, value.length + 2);
      }
      return addSize(w, typeof value === 'number' ? String(value).length : 5);
    }
    case EXTENSION_SIBLING:
    case COMPLEX:
      if (!isJsonObject(value)) fail(w, 'E_FHIR_INVALID', `must be a JSON object (FHIR ${child.type})`);
      return walkObject(w, value, child.type, depth + 1, false);
    case RESOURCE: {
      if (!isJsonObject(value) || typeof value['resourceType'] !== 'string')
        fail(w, 'E_FHIR_INVALID', 'must be a resource (a JSON object with a string resourceType)');
      const type = value['resourceType'];
      if (!isR4ResourceType(type)) {
        w.segs.push('resourceType');
        fail(w, 'E_UNKNOWN_RESOURCE_TYPE', 'resourceType names no FHIR R4 resource');
      }
      return walkObject(w, value, type, depth + 1, true);
    }
  }
}
