// Test parties for envelope tests: deterministic keys (from a SHA-256 counter stream, so tests and vectors are
// reproducible) for a publisher, the broker and two subscribers, with a keyring each that knows everyone's public keys.
import { createHash } from 'node:crypto';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, publicRecords, type PublicKeyRecord, type ServiceKeys } from '../../src/crypto/keys.js';
import type { RandomSource } from '../../src/crypto/random.js';

/** Deterministic bytes: SHA-256(label || counter) blocks. Tests only — never a key source outside test/. */
export function streamRandom(label: string): RandomSource {
  let counter = 0;
  let buf = new Uint8Array(0);
  return (n) => {
    while (buf.length < n) {
      const block = createHash('sha256').update(`${label}/${counter++}`).digest();
      const next = new Uint8Array(buf.length + block.length);
      next.set(buf);
      next.set(block, buf.length);
      buf = next;
    }
    const out = buf.slice(0, n);
    buf = buf.slice(n);
    return out;
  };
}

export const SERVICES = ['registration', 'broker', 'billing', 'research'] as const;
export type Party = (typeof SERVICES)[number];

export interface Parties {
  keys: Record<Party, ServiceKeys>;
  rings: Record<Party, Keyring>;
  publics: PublicKeyRecord[];
}

export function makeParties(label = 'parties'): Parties {
  const random = streamRandom(label);
  const keys = Object.fromEntries(SERVICES.map((s) => [s, generateServiceKeys(s, 1, random)])) as Record<
    Party,
    ServiceKeys
  >;
  const publics = SERVICES.flatMap((s) => publicRecords(keys[s]));
  const rings = Object.fromEntries(SERVICES.map((s) => [s, new Keyring(keys[s], publics)])) as Record<Party, Keyring>;
  return { keys, rings, publics };
}

/** A synthetic Patient (fictional person) with PHI strings the no-PHI test searches for. */
export function syntheticPatient(): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    id: 'pat-zz-0001',
    meta: {
      profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
      security: [
        { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R', display: 'restricted' },
      ],
      tag: [{ system: 'urn:example:tags', code: 'synthetic' }],
    },
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-12-3456' }],
    active: true,
    name: [{ use: 'official', family: 'Quillfeather', given: ['Zebulon', 'Marisol'] }],
    _gender: { extension: [{ url: 'urn:example:ext', valueString: 'NoteAboutGender' }] },
    gender: 'other',
    birthDate: '1977-03-14',
    telecom: [{ system: 'phone', value: '+1-555-0199-7788' }],
    address: [{ line: ['4242 Nonexistent Lane'], city: 'Fabletown', postalCode: '99999' }],
    multipleBirthInteger: 2,
    deceasedBoolean: false,
    _birthDate: null,
    contact: [{ name: { family: 'Quillfeather', _given: [null, { id: 'g2' }], given: [null, 'Ottoline'] } }],
  };
}
