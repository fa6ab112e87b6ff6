import { createHmac } from 'node:crypto';
import { expect, it } from 'vitest';
import { subscriberPseudonymKey } from '../../src/crypto/broker-secrets.js';
import { patientPseudonym, patientPseudonymKey } from '../../src/registry/pseudonym.js';

const master = new Uint8Array(32).fill(7);
const secrets = { pseudonymKey: master };

it('is a keyed, stable, token-safe pseudonym that does not contain the reference', () => {
  const a = patientPseudonym(secrets, 'Patient/123');
  expect(a).toBe(patientPseudonym(secrets, 'Patient/123'));
  expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(a).not.toContain('123');
  expect(patientPseudonym(secrets, 'Patient/124')).not.toBe(a);
  expect(patientPseudonym({ pseudonymKey: new Uint8Array(32).fill(8) }, 'Patient/123')).not.toBe(a);
});

it('matches HMAC-SHA256 under the derived key, which differs from every subscriber pseudonym key', () => {
  const key = patientPseudonymKey(master);
  expect(patientPseudonym(secrets, 'Patient/x')).toBe(
    createHmac('sha256', key).update('Patient/x').digest('base64url'),
  );
  expect(Buffer.from(key).equals(Buffer.from(subscriberPseudonymKey(master, 'analytics')))).toBe(false);
  expect(Buffer.from(key).equals(Buffer.from(master))).toBe(false);
});
