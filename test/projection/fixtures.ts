// Shared helpers for the projection tests: where the real FHIR examples live, a ProfileDef builder for synthetic
// profiles, and an independent HMAC-SHA256/base32 to check pseudonyms without using the code under test.
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProfileDef } from '../../src/catalog/types.js';

export const EXAMPLES =
  process.env['PHI_BROKER_FHIR_EXAMPLES'] ?? fileURLToPath(new URL('../../../shared/fhir-examples', import.meta.url));
export const HAVE_EXAMPLES = existsSync(join(EXAMPLES, 'hl7')) && existsSync(join(EXAMPLES, 'synthea'));
/** Suffix for describe names when the examples are absent (the suite is then skipped, visibly). */
export const SKIP_NOTE = HAVE_EXAMPLES
  ? ''
  : ` (SKIPPED: no FHIR examples at ${EXAMPLES}; set PHI_BROKER_FHIR_EXAMPLES)`;

/** The repository's own catalog folders (the shipped profiles). */
export const SHIPPED = {
  subjects: fileURLToPath(new URL('../../subjects', import.meta.url)),
  profiles: fileURLToPath(new URL('../../fhir-profiles', import.meta.url)),
};

export type Json = Record<string, unknown>;

export function hl7(file: string): Json {
  return JSON.parse(readFileSync(join(EXAMPLES, 'hl7', file), 'utf8')) as Json;
}

export function syntheaBundles(): { file: string; bundle: Json }[] {
  const dir = join(EXAMPLES, 'synthea');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, bundle: JSON.parse(readFileSync(join(dir, file), 'utf8')) as Json }));
}

export function syntheaResources(): Json[] {
  const out: Json[] = [];
  for (const { bundle } of syntheaBundles()) {
    for (const e of bundle['entry'] as { resource?: Json }[]) if (e.resource !== undefined) out.push(e.resource);
  }
  return out;
}

export const PROFILE_URL = 'https://phi-broker.example/fhir/StructureDefinition/test-profile';

export function profile(
  resourceType: string,
  allow: string[],
  more: Partial<Omit<ProfileDef, 'resourceType' | 'allow'>> = {},
): ProfileDef {
  return {
    id: 'test-profile',
    resourceType,
    url: PROFILE_URL,
    description: 'synthetic test profile',
    deidentified: false,
    markMasked: false,
    transforms: {},
    contained: {},
    where: {},
    file: 'test/projection/fixtures.ts',
    allow,
    ...more,
  };
}

export const KEY_A = new Uint8Array(32).fill(0xa5);
export const KEY_B = new Uint8Array(32).fill(0x5a);

/** RFC 4648 base32, lowercase, no padding — written independently of src/. */
export function refBase32(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)];
  return out;
}

/** The token a non-UUID value must get: base32 of the first 20 bytes of HMAC-SHA256(key, value). */
export function refToken(key: Uint8Array, value: string): string {
  return refBase32(createHmac('sha256', key).update(value, 'utf8').digest().subarray(0, 20));
}

/** Deep-freezes a JSON value so any mutation by the code under test throws. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const c of Object.values(v)) deepFreeze(c);
    Object.freeze(v);
  }
  return v;
}

/** Every object/array reachable from a JSON value (to check that output and input share nothing). */
export function containers(v: unknown, into = new Set<unknown>()): Set<unknown> {
  if (typeof v === 'object' && v !== null) {
    into.add(v);
    for (const c of Object.values(v)) containers(c, into);
  }
  return into;
}

/** True when the value holds an empty object or array anywhere. */
export function hasEmpty(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const vals = Object.values(v);
  if (vals.length === 0) return true;
  return vals.some(hasEmpty);
}
