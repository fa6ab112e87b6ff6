// The load-time rules for a profile's `where` value filters: keep only the items of a repeating element whose
// discriminator child has one of the listed values. This is FHIR R4 slicing (profiling.html#slicing) reduced to
// the one discriminator type a minimum-necessary allow-list needs, `value`, with a discriminator that is a direct
// child primitive of the item (`ContactPoint.system`, `Identifier.system`, `Address.use`). Pure: checked against
// the FHIR R4 element index; the projection (src/projection/tree.ts) applies the filter.
import { fhirElements, isPrimitiveType } from '../fhir/elements.js';
import { resolveRelativePath } from './element-path.js';
import type { ResolvedPath } from './element-path.js';

/** Primitive types whose JSON value is a string matched exactly (dates, times, binary and narrative are not discriminators). */
export const DISCRIMINATOR_TYPES: ReadonlySet<string> = new Set([
  'code',
  'string',
  'uri',
  'url',
  'canonical',
  'id',
  'oid',
  'uuid',
]);

/**
 * Why the element at `resolved` cannot carry a value filter, or undefined when it can: it must repeat and its
 * items must be objects of one complex type (a datatype or backbone element), not extensions or resources.
 */
export function filterTargetError(resolved: ResolvedPath): string | undefined {
  const last = resolved.steps[resolved.steps.length - 1];
  if (last === undefined) return 'a value filter needs a repeating element, not the whole resource';
  if (!resolved.repeats)
    return `${resolved.path} does not repeat (max 1): a value filter keeps some items of a repeating element`;
  const [type, ...more] = resolved.typeCodes;
  if (type === undefined || more.length > 0)
    return `${resolved.path} has several types (${resolved.typeCodes.join(', ')}): name one`;
  if (isPrimitiveType(type))
    return `${resolved.path} is a repeating primitive (${type}): its items have no child element to discriminate on`;
  if (type === 'Extension')
    return `${resolved.path} holds extensions: keep some by URL with ${last.name}(<url>) in allow instead`;
  if (type === 'Resource')
    return `${resolved.path} holds whole resources: list their types in the profile's contained map instead`;
  if (fhirElements().types[type] === undefined)
    return `${resolved.path} is of type ${type}, which the FHIR R4 index does not describe`;
  return undefined;
}

/**
 * Why `name` cannot discriminate the items of `resolved` (already accepted by filterTargetError), or undefined:
 * it must be a direct, single-valued child whose type is a string-valued primitive (DISCRIMINATOR_TYPES).
 */
export function discriminatorError(resolved: ResolvedPath, name: string): string | undefined {
  const type = resolved.typeCodes[0] ?? '';
  const where = `${resolved.path} (${type})`;
  if (name.includes('.') || name.includes('('))
    return `'${name}' must be a direct child element of ${where}, not a path`;
  const r = resolveRelativePath(type, name);
  if (!r.ok) return `'${name}' is not a child element of ${where}: ${r.error.replace(/^step \d+ '[^']*': /, '')}`;
  const step = r.steps[0];
  if (step === undefined) return `'${name}' is not a child element of ${where}`;
  if (step.choice) return `${resolved.path}.${name} is a choice element: a discriminator has one type`;
  if (step.repeats) return `${resolved.path}.${name} repeats: a discriminator has one value per item`;
  const [t] = r.typeCodes;
  if (t === undefined || !DISCRIMINATOR_TYPES.has(t)) {
    return `${resolved.path}.${name} is ${r.typeCodes.join('|')}: a discriminator is a primitive matched as an exact string (${[...DISCRIMINATOR_TYPES].join(', ')})`;
  }
  return undefined;
}
