// The benchmark's FHIR R4 resources, generated from a fixed seed so every run (and every baseline in a run)
// sends the same bytes: a Coverage (small), a US-Core-like Patient of ~1.6 KB (medium), an Observation with
// components, and a DiagnosticReport carrying a 200 KB PDF-like attachment in presentedForm (large). All
// values are synthetic; none names a real person.
import type { Coverage, DiagnosticReport, FhirResource, Observation, Patient } from 'fhir/r4.js';

export type SizeName = 'small' | 'medium' | 'large' | 'observation';

/** Which resource type each size sends, and its publisher in the bench catalogs (bench/catalog/fanout-N). */
export const SIZES: Readonly<
  Record<
    SizeName,
    { readonly type: 'Coverage' | 'Patient' | 'DiagnosticReport' | 'Observation'; readonly publisher: string }
  >
> = {
  small: { type: 'Coverage', publisher: 'registration' },
  medium: { type: 'Patient', publisher: 'registration' },
  large: { type: 'DiagnosticReport', publisher: 'ehr' },
  observation: { type: 'Observation', publisher: 'ehr' },
};

/** mulberry32: a tiny deterministic PRNG (not for keys or nonces — those come from src/crypto/random.ts). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FAMILY = [
  'Quillfeather',
  'Ravensloe',
  'Northgate',
  'Ashcombe',
  'Fenwright',
  'Larkspur',
  'Moorcroft',
  'Thistlewood',
];
const GIVEN = ['Marisol', 'Zephyrine', 'Tobin', 'Ilsa', 'Oswin', 'Perpetua', 'Caspian', 'Wren'];
const STREET = ['Lantern Row', 'Heron Lane', 'Copper Street', 'Millrace Road', 'Orchard Way'];
const CITY = ['Brightwater', 'Stonebridge', 'Eastmere', 'Fallowfield'];

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)] as T;
}

function digits(rnd: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String(Math.floor(rnd() * 10));
  return s;
}

function date(rnd: () => number, from: number, to: number): string {
  const y = from + Math.floor(rnd() * (to - from));
  const m = 1 + Math.floor(rnd() * 12);
  const d = 1 + Math.floor(rnd() * 28);
  return `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

export function patient(i: number): Patient {
  const rnd = seeded(1000 + i);
  const family = pick(rnd, FAMILY);
  const given = pick(rnd, GIVEN);
  const mrn = `MRN-${digits(rnd, 8)}`;
  return {
    resourceType: 'Patient',
    id: `bench-patient-${i}`,
    meta: {
      profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
      security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }],
    },
    extension: [
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: rnd() < 0.5 ? 'F' : 'M' },
    ],
    identifier: [
      {
        use: 'usual',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        system: 'urn:oid:2.16.840.1.113883.19.5',
        value: mrn,
      },
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] },
        system: 'http://hl7.org/fhir/sid/us-ssn',
        value: `999-${digits(rnd, 2)}-${digits(rnd, 4)}`,
      },
    ],
    active: true,
    name: [{ use: 'official', family, given: [given, pick(rnd, GIVEN)] }],
    telecom: [
      { system: 'phone', value: `555-${digits(rnd, 4)}-${digits(rnd, 4)}`, use: 'mobile' },
      { system: 'fax', value: `555-${digits(rnd, 4)}-${digits(rnd, 4)}`, use: 'work' },
      { system: 'email', value: `${given.toLowerCase()}.${family.toLowerCase()}${digits(rnd, 3)}@example.org` },
    ],
    gender: rnd() < 0.5 ? 'female' : 'male',
    birthDate: date(rnd, 1930, 2020),
    address: [
      {
        use: 'home',
        line: [`${1 + Math.floor(rnd() * 200)} ${pick(rnd, STREET)}`, `Apt ${1 + Math.floor(rnd() * 40)}`],
        city: pick(rnd, CITY),
        state: 'MA',
        postalCode: `02${digits(rnd, 3)}`,
        country: 'US',
      },
    ],
    maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] },
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US' }] }, preferred: true }],
    generalPractitioner: [
      { reference: `Practitioner/bench-gp-${i % 50}`, display: `Dr. ${pick(rnd, GIVEN)} ${pick(rnd, FAMILY)}` },
    ],
  };
}

export function coverage(i: number): Coverage {
  const rnd = seeded(2000 + i);
  return {
    resourceType: 'Coverage',
    id: `bench-coverage-${i}`,
    status: 'active',
    subscriberId: `SUB-${digits(rnd, 9)}`,
    beneficiary: { reference: `Patient/bench-patient-${i}` },
    relationship: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/subscriber-relationship', code: 'self' }],
    },
    period: { start: date(rnd, 2024, 2026) },
    payor: [{ reference: 'Organization/bench-payer-1' }],
  };
}

export function observation(i: number): Observation {
  const rnd = seeded(3000 + i);
  const component = (code: string, display: string, value: number): NonNullable<Observation['component']>[number] => ({
    code: { coding: [{ system: 'http://loinc.org', code, display }] },
    valueQuantity: { value, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' },
  });
  return {
    resourceType: 'Observation',
    id: `bench-bp-${i}`,
    status: 'final',
    category: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] },
    ],
    code: { coding: [{ system: 'http://loinc.org', code: '85354-9', display: 'Blood pressure panel' }] },
    subject: { reference: `Patient/bench-patient-${i}` },
    effectiveDateTime: `${date(rnd, 2025, 2027)}T09:30:00Z`,
    performer: [{ reference: `Practitioner/bench-gp-${i % 50}` }],
    component: [
      component('8480-6', 'Systolic blood pressure', 100 + Math.floor(rnd() * 60)),
      component('8462-4', 'Diastolic blood pressure', 60 + Math.floor(rnd() * 40)),
    ],
  };
}

/** 150 000 random bytes → 200 000 base64 characters: a scanned-report-sized attachment. */
const ATTACHMENT_BYTES = 150_000;

export function diagnosticReport(i: number): DiagnosticReport {
  const rnd = seeded(4000 + i);
  const bytes = Buffer.alloc(ATTACHMENT_BYTES);
  for (let k = 0; k < bytes.length; k += 4) bytes.writeUInt32LE(Math.floor(rnd() * 4294967296), k);
  return {
    resourceType: 'DiagnosticReport',
    id: `bench-report-${i}`,
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }] },
    subject: { reference: `Patient/bench-patient-${i}` },
    effectiveDateTime: `${date(rnd, 2025, 2027)}T10:00:00Z`,
    issued: `${date(rnd, 2025, 2027)}T12:00:00Z`,
    conclusion: 'No acute cardiopulmonary abnormality.',
    presentedForm: [{ contentType: 'application/pdf', title: 'Radiology report', data: bytes.toString('base64') }],
  };
}

/** The i-th resource of a size; sizes vary by seed only, so every run and baseline sees the same sequence. */
export function resourceOf(size: SizeName, i: number): FhirResource {
  switch (size) {
    case 'small':
      return coverage(i);
    case 'medium':
      return patient(i);
    case 'large':
      return diagnosticReport(i);
    case 'observation':
      return observation(i);
  }
}

/** How many distinct resources a run cycles through (large ones are costly to build; they are reused). */
export function poolSize(size: SizeName): number {
  return size === 'large' ? 8 : 256;
}
