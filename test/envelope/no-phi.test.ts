// No PHI in envelope bytes: seal resources holding known strings and search the bytes — as sent, and with every
// base64url token decoded — for each of them (DESIGN.md property 1; STYLE.md habit 10).
import { beforeAll, describe, expect, it } from 'vitest';
import { initCrypto } from '../../src/crypto/sodium.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { HAVE_EXAMPLES, SKIP_NOTE, readExample, stringValues } from '../fhir/examples.js';
import { makeParties, syntheticPatient, type Parties } from './parties.js';

let p: Parties;
beforeAll(async () => {
  await initCrypto();
  p = makeParties();
});

function sealed(resource: Record<string, unknown>): Buffer {
  const s = sealEnvelope({
    id: 'm-1',
    iss: 'registration',
    iat: 1,
    typ: resource['resourceType'] as string,
    resource,
    signer: p.keys.registration.sign,
    recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
  });
  return Buffer.from(s.bytes);
}

/** The bytes plus every base64url token in them decoded (a leak hidden by an encoding is still a leak). */
function haystacks(bytes: Buffer): Buffer[] {
  const tokens = bytes.toString('utf8').match(/[A-Za-z0-9_-]{8,}/g) ?? [];
  return [bytes, ...tokens.map((t) => Buffer.from(t, 'base64url'))];
}

/**
 * A short needle made only of base64url characters ("both", "home") turns up inside random ciphertext text by
 * chance (~1 in 1,600 per needle per 10 KB envelope): in the bytes as sent it is searched as the JSON string a
 * value left in clear would be (`"both"`, which base64url text cannot contain); in decoded tokens as it is.
 */
const CHANCE_IN_BASE64 = /^[A-Za-z0-9_-]{1,7}$/;

function leaks(bytes: Buffer, needles: string[]): string[] {
  const [sent, ...decoded] = haystacks(bytes) as [Buffer, ...Buffer[]];
  return needles.filter(
    (n) => sent.includes(CHANCE_IN_BASE64.test(n) ? JSON.stringify(n) : n) || decoded.some((h) => h.includes(n)),
  );
}

describe('no PHI in envelope bytes', () => {
  it('finds none of the synthetic patient strings, names, numbers or dates', () => {
    const needles = [
      'Quillfeather',
      'Zebulon',
      'Marisol',
      'Ottoline',
      '999-12-3456',
      '1977-03-14',
      '555-0199',
      'Nonexistent',
      'Fabletown',
      '99999',
      'pat-zz-0001',
      'NoteAboutGender',
      'synthetic',
      'restricted',
    ];
    const bytes = sealed(syntheticPatient());
    expect(leaks(bytes, needles)).toStrictEqual([]);
    // the check can fail: the allow-listed plaintext is found
    expect(leaks(bytes, ['us-core-patient', 'v3-Confidentiality'])).toStrictEqual([
      'us-core-patient',
      'v3-Confidentiality',
    ]);
  });

  it("finds no name planted in meta.security[0].display, on the coding's extension or in a free-text meta.profile", () => {
    const resource = syntheticPatient();
    const meta = resource['meta'] as { profile: unknown[]; security: Record<string, unknown>[] };
    meta.security[0] = {
      ...meta.security[0],
      display: 'Ottoline Quillfeather',
      extension: [{ url: 'urn:example:who', valueString: 'Marisol Zebulon' }],
    };
    const bytes = sealed(resource);
    expect(leaks(bytes, ['Ottoline', 'Quillfeather', 'Marisol', 'Zebulon', 'urn:example:who'])).toStrictEqual([]);
    expect(leaks(bytes, ['v3-Confidentiality', 'us-core-patient'])).toStrictEqual([
      'v3-Confidentiality',
      'us-core-patient',
    ]);
    // a profile list that is not all canonical URLs is sealed whole, URL included
    meta.profile.push('Ottoline Quillfeather');
    expect(leaks(sealed(resource), ['Ottoline', 'us-core-patient', 'v3-Confidentiality'])).toStrictEqual([
      'v3-Confidentiality',
    ]);
  });

  it.skipIf(!HAVE_EXAMPLES)(
    `finds no value of hl7/patient-example.json or patient-example-chinese.json${SKIP_NOTE}`,
    () => {
      for (const file of ['hl7/patient-example.json', 'hl7/patient-example-chinese.json']) {
        const resource = readExample(file) as Record<string, unknown>;
        const needles = stringValues(resource).filter((v) => v.length >= 4 && v !== resource['resourceType']);
        expect(needles.length).toBeGreaterThan(10);
        expect(leaks(sealed(resource), needles)).toStrictEqual([]);
        // the check can fail for a short needle too: the plaintext resource type is found as the JSON string it is
        expect(leaks(sealed(resource), ['Patient'])).toStrictEqual(['Patient']);
      }
    },
  );
});
