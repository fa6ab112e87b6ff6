// Where the third-party FHIR R4 examples live (/work/shared/fhir-examples, see its README.md) and how
// tests read them. Tests that need them are skipped, with the reason in their name, when absent.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const EXAMPLES_DIR =
  process.env['PHI_BROKER_FHIR_EXAMPLES'] ?? resolve(import.meta.dirname, '../../../shared/fhir-examples');
export const HAVE_EXAMPLES = existsSync(join(EXAMPLES_DIR, 'hl7')) && existsSync(join(EXAMPLES_DIR, 'synthea'));
export const SKIP_NOTE = HAVE_EXAMPLES
  ? ''
  : ` (SKIPPED: no FHIR examples at ${EXAMPLES_DIR}; set PHI_BROKER_FHIR_EXAMPLES)`;

export function readExample(relative: string): unknown {
  return JSON.parse(readFileSync(join(EXAMPLES_DIR, relative), 'utf8')) as unknown;
}

export function listExamples(folder: 'hl7' | 'synthea'): string[] {
  return HAVE_EXAMPLES
    ? readdirSync(join(EXAMPLES_DIR, folder))
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
}

/** Every string value anywhere in `json` (not keys). */
export function stringValues(json: unknown, out: string[] = []): string[] {
  if (typeof json === 'string') out.push(json);
  else if (Array.isArray(json)) for (const v of json) stringValues(v, out);
  else if (typeof json === 'object' && json !== null) for (const v of Object.values(json)) stringValues(v, out);
  return out;
}
