// Size limits applied to every FHIR resource the broker validates, so that no input costs more CPU or
// memory than these bounds allow (the structural walk stops as soon as one is crossed). Parsed once at
// the edge and frozen (STYLE.md habit 3). FHIR R4 itself caps a string at 1 MB (datatypes.html#string).

export interface ValidationLimits {
  /** Compact JSON serialisation of the whole resource, in UTF-16 code units (escapes not counted). */
  readonly maxResourceSize: number;
  /** Nesting of JSON objects and arrays; the resource object itself is depth 1. */
  readonly maxDepth: number;
  /** Length of one string value, in UTF-16 code units. */
  readonly maxStringLength: number;
  /** Number of items in one JSON array. */
  readonly maxArrayLength: number;
  /**
   * When true (default), the resource must carry a logical `id`: the broker names, routes and records
   * every published resource by `<Type>/<id>` (FHIR makes `id` optional only for create requests).
   */
  readonly requireId: boolean;
}

export const DEFAULT_VALIDATION_LIMITS: ValidationLimits = Object.freeze({
  maxResourceSize: 1_048_576, // 1 MiB
  maxDepth: 32,
  maxStringLength: 524_288, // 512 KiB: room for a base64 photo, far below the resource limit
  maxArrayLength: 10_000,
  requireId: true,
});

const NUMERIC_KEYS = ['maxResourceSize', 'maxDepth', 'maxStringLength', 'maxArrayLength'] as const;

/**
 * Defaults overlaid with `overrides`, checked and frozen. A wrong override is a caller mistake, so it
 * throws `TypeError` (config files are checked by their own schema before they get here).
 */
export function validationLimits(overrides: Partial<ValidationLimits> = {}): ValidationLimits {
  const merged = { ...DEFAULT_VALIDATION_LIMITS, ...overrides };
  for (const key of NUMERIC_KEYS) {
    const v = merged[key];
    if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`ValidationLimits.${key} must be a positive integer`);
  }
  if (typeof merged.requireId !== 'boolean') throw new TypeError('ValidationLimits.requireId must be a boolean');
  return Object.freeze(merged);
}
