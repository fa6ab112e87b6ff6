// Bundle entry fullUrls: RFC 9562 version-5 UUIDs, checked against values computed independently (Python's
// uuid.uuid5 with NAMESPACE_URL and "urn:phi-broker", then the name), stable for one resource in one scope.
import { describe, expect, it } from 'vitest';
import { entryFullUrl, nameBasedUuid } from '../../src/fhir/full-url.js';

describe('nameBasedUuid', () => {
  it('is the RFC 9562 v5 UUID of the name in the urn:phi-broker namespace', () => {
    expect(nameBasedUuid('access:ar-1:ehr|Patient/p1')).toBe('8dc35070-7dd6-5ad2-b1fe-d726a94c15ee');
  });
});

describe('entryFullUrl', () => {
  it('is a urn:uuid, the same for the same resource and scope, different across scopes and ids', () => {
    const a = entryFullUrl('access:ar-1:ehr', { resourceType: 'Patient', id: 'p1' }, 0);
    expect(a).toBe('urn:uuid:8dc35070-7dd6-5ad2-b1fe-d726a94c15ee');
    expect(entryFullUrl('access:ar-1:ehr', { resourceType: 'Patient', id: 'p1' }, 7)).toBe(a);
    expect(entryFullUrl('access:ar-1:lab', { resourceType: 'Patient', id: 'p1' }, 0)).not.toBe(a);
    expect(entryFullUrl('access:ar-1:ehr', { resourceType: 'Patient', id: 'p2' }, 0)).not.toBe(a);
  });

  it('names a resource without an id by its position', () => {
    const first = entryFullUrl('s', { resourceType: 'Observation' }, 0);
    expect(first).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(entryFullUrl('s', { resourceType: 'Observation' }, 1)).not.toBe(first);
  });
});
