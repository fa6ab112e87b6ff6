// Measures validateResource per resource (µs) on a spec Patient and a Synthea Patient, and the share of
// the structural walk. Reported as test annotations and never asserted (STYLE.md habit 12: no gating on time).
import { fhir } from '@fhir-typescript/r4-core';
import { describe, expect, it } from 'vitest';
import type { FhirResource } from '../../src/fhir/resource.js';
import { checkStructure } from '../../src/fhir/structure.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { HAVE_EXAMPLES, readExample, SKIP_NOTE } from './examples.js';

function microsPerCall(f: () => void, runs = 800): number {
  const start = performance.now();
  for (let i = 0; i < runs; i++) f();
  return ((performance.now() - start) * 1000) / runs;
}

/** Best of three interleaved rounds each, so JIT warm-up and GC do not land on one of them. */
function measure(fs: readonly (() => void)[]): number[] {
  const best = fs.map(() => Infinity);
  for (let round = 0; round < 3; round++) fs.forEach((f, i) => (best[i] = Math.min(best[i]!, microsPerCall(f))));
  return best;
}

describe.skipIf(!HAVE_EXAMPLES)(`validation cost${SKIP_NOTE}`, () => {
  it.for([
    ['hl7/patient-example.json', (): FhirResource => readExample('hl7/patient-example.json') as FhirResource],
    ['a synthea Patient', (): FhirResource => (readExample('synthea/Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json') as { entry: { resource: FhirResource }[] }).entry[0]!.resource],
  ] as const)('%s', async ([label, load], { annotate }) => {
    const resource = load();
    const model = (fhir as unknown as Record<string, new (json: unknown) => { doModelValidation(): unknown[] }>)[resource.resourceType]!;
    const [full = 0, walk = 0, core = 0] = measure([
      () => validateResource(resource, DEFAULT_VALIDATION_LIMITS),
      () => checkStructure(resource, DEFAULT_VALIDATION_LIMITS),
      () => new model(resource).doModelValidation(),
    ]);
    expect(full).toBeGreaterThan(0);
    await annotate(`${label} (${JSON.stringify(resource).length} chars): validateResource ${full.toFixed(1)} µs; structural walk ${walk.toFixed(1)} µs, r4-core model ${core.toFixed(1)} µs`);
  });
});
