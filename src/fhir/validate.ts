// validateResource: the FHIR R4 input check the broker runs on every decrypted resource before it is
// projected. Order (first failure wins, see docs/validation.md):
//   1. E_NOT_FHIR               not a JSON object, or no string resourceType
//   2. E_UNKNOWN_RESOURCE_TYPE  resourceType is no FHIR R4 (4.0.1) resource
//   3. structural walk          unknown elements at any depth (E_UNKNOWN_ELEMENT), JSON shape
//                               (E_FHIR_INVALID), size limits (E_TOO_LARGE) — src/fhir/structure.ts
//   4. E_FHIR_INVALID           no logical id (when limits.requireId)
//   5. E_FHIR_INVALID           @fhir-typescript/r4-core model validation (required elements, primitive
//                               formats, required bindings) — src/fhir/model-issues.ts
// The library's model classes are imported here once per process and nowhere else; modules that only split
// bundles or read patient references do not load them. Only its `dist/fhir.js` module: the package root also
// loads every ValueSet expansion (valueSetCodings.js, valueSetCodes.js: 1,096 modules, ~120 MB of source),
// which model validation never reads — the classes import only the small `*VsValidation` code lists of their
// required bindings. Same classes, same checks: ~230 MB less RSS and ~2 s less start-up
// (docs/performance.md; test/fhir/validate.test.ts checks this namespace is the package root's `fhir`).
import * as fhir from '@fhir-typescript/r4-core/dist/fhir.js';
import { BrokerError } from '../wire/errors.js';
import { isJsonNumber } from '../wire/json.js';
import type { ValidationLimits } from './limits.js';
import type { ModelIssue } from './model-issues.js';
import { modelIssuesToError } from './model-issues.js';
import type { FhirResource } from './resource.js';
import { hasResourceType, isJsonObject } from './resource.js';
import { checkStructure, isR4ResourceType } from './structure.js';

// The limits travel with the validator: callers import both from here.
export { DEFAULT_VALIDATION_LIMITS, validationLimits } from './limits.js';
export type { ValidationLimits } from './limits.js';

type ModelClass = new (json: unknown) => { doModelValidation(): readonly ModelIssue[] };
// The namespace object of r4-core's generated classes, indexed by resource type name.
const models = fhir as unknown as Readonly<Record<string, ModelClass | undefined>>;

/**
 * r4-core reads numbers as JS numbers; the structural walk has already checked every number leaf by its lexeme
 * (decimal grammar, integer range), which is stricter. So r4-core gets a copy with each JsonNumber as a double,
 * and a decimal beyond the double range as 0 (a valid decimal, so r4-core neither refuses nor reads it).
 */
function withJsNumbers(node: unknown): unknown {
  if (typeof node !== 'object' || node === null) return node;
  if (isJsonNumber(node)) {
    const n = Number(node.value);
    return Number.isFinite(n) ? n : 0;
  }
  if (Array.isArray(node)) return node.map(withJsNumbers);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '__proto__') Object.defineProperty(out, k, { value: withJsNumbers(v), enumerable: true, writable: true });
    else out[k] = withJsNumbers(v);
  }
  return out;
}

/**
 * Checks `json` as a FHIR R4 resource and returns it unchanged (not copied) typed as one; throws a
 * BrokerError whose message and path name elements, never values. `partial`: missing required elements pass.
 */
export function validateResource(
  json: unknown,
  limits: ValidationLimits,
  options: { readonly partial?: boolean } = {},
): FhirResource {
  if (!isJsonObject(json)) throw new BrokerError('E_NOT_FHIR', 'the input is not a JSON object');
  if (!hasResourceType(json))
    throw new BrokerError('E_NOT_FHIR', 'resourceType: missing or not a string', { path: 'resourceType' });
  const type = json.resourceType;
  const model = models[type];
  if (!isR4ResourceType(type) || typeof model !== 'function') {
    throw new BrokerError('E_UNKNOWN_RESOURCE_TYPE', 'resourceType: names no FHIR R4 resource', {
      path: 'resourceType',
    });
  }
  const { numbers } = checkStructure(json, limits);
  if (limits.requireId && json.id === undefined) {
    const path = `${type}.id`;
    throw new BrokerError('E_FHIR_INVALID', `${path}: a published resource must have a logical id`, { path });
  }
  let issues: readonly ModelIssue[];
  try {
    issues = new model(numbers === 0 ? json : withJsNumbers(json)).doModelValidation();
  } catch {
    // The library failed on input the structural walk let through; its message may quote the input, so
    // it is neither kept nor passed on.
    throw new BrokerError('E_FHIR_INVALID', `${type}: could not be read as a FHIR R4 ${type}`, { path: type });
  }
  // A partial resource (a minimum-necessary copy, docs/patient-rights.md) may lack required elements its profile withholds.
  const error = modelIssuesToError(
    options.partial === true ? issues.filter((i) => i.code !== 'required') : issues,
    json,
  );
  if (error !== undefined) throw error;
  return json;
}
