// The SDK is typed with the FHIR R4 type definitions (@types/fhir, `fhir/r4`): a subscription to a type
// hands its handler that type. Checked by the compiler (npm test runs tsc over test/ too).
import type { Observation, Patient, FhirResource } from 'fhir/r4.js';
import { describe, expectTypeOf, it } from 'vitest';
import type { AccessRequestSummary, Delivered, PhiClient, ResourceOf, ResourceType } from '../../src/index.js';

describe('SDK types', () => {
  it('maps a resource type name to its FHIR R4 type', () => {
    expectTypeOf<ResourceOf<'Patient'>>().toEqualTypeOf<Patient>();
    expectTypeOf<ResourceOf<'Observation'>>().toEqualTypeOf<Observation>();
    expectTypeOf<ResourceOf<'*'>>().toEqualTypeOf<FhirResource>();
    expectTypeOf<'Patient'>().toExtend<ResourceType>();
    expectTypeOf<'Patientish'>().not.toExtend<ResourceType>();
  });

  it('subscribe hands the handler the subscribed type; publish takes a resource', () => {
    type Subscribe = PhiClient['subscribe'];
    expectTypeOf<Parameters<Subscribe>[0]>().toEqualTypeOf<ResourceType | '*'>();
    const handler = (d: Delivered<Patient>): string | undefined => d.resource.birthDate;
    expectTypeOf(handler).parameter(0).toEqualTypeOf<Delivered<ResourceOf<'Patient'>>>();
    expectTypeOf<PhiClient['publish']>().toBeCallableWith({
      resourceType: 'Patient',
      id: 'p1',
      birthDate: '1984-07-19',
    } satisfies Patient);
  });

  it('a requester files a right-of-access request with a patient reference and gets id, status and dates back', () => {
    expectTypeOf<PhiClient['requestAccess']>().parameters.toEqualTypeOf<[patientRef: string]>();
    expectTypeOf<ReturnType<PhiClient['requestAccess']>>().resolves.toEqualTypeOf<AccessRequestSummary>();
    expectTypeOf<ReturnType<PhiClient['accessStatus']>>().resolves.toEqualTypeOf<AccessRequestSummary>();
    expectTypeOf<AccessRequestSummary['status']>().toEqualTypeOf<'open' | 'partial' | 'complete'>();
    expectTypeOf<AccessRequestSummary>().toHaveProperty('due').toEqualTypeOf<string>();
  });
});
