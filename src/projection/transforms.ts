// The value transforms a projection profile may ask for (docs/profiles.md), as pure functions. They serve
// de-identified consumers: HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i) — (B) geographic units smaller than a
// state reduced to the first three ZIP digits, (C) dates reduced to the year — and keyed pseudonyms in place of
// identifiers (a re-identification code under 164.514(c)). Every function returns `undefined` for a value it
// cannot interpret: the projector then withholds that value (fail safe, never pass it through unchanged).
import type { ProjectionContext } from './types.js';

/** FHIR date / dateTime / instant lexical forms start with a 4-digit year (FHIR R4 §2.24.0.1 datatypes). */
const DATE_LIKE = /^([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])(T[0-9:.+\-Z]+)?)?)?$/;

/**
 * `year`: a FHIR `date` or `dateTime` → `YYYY` (itself a valid FHIR date and dateTime). The year is the one written
 * (no time-zone normalisation). Anything that is not a date-like string → undefined (withheld).
 */
export function year(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = DATE_LIKE.exec(value);
  return m?.[1];
}

/**
 * The three-digit ZIP prefixes whose areas held 20,000 people or fewer (2000 Census), which Safe Harbor requires to
 * become `000` (45 CFR 164.514(b)(2)(i)(B); the list is HHS's, "Guidance Regarding Methods for De-identification of
 * Protected Health Information", 2012, §3.3).
 */
export const RESTRICTED_ZIP3: ReadonlySet<string> = new Set([
  '036',
  '059',
  '063',
  '102',
  '203',
  '556',
  '692',
  '790',
  '821',
  '823',
  '830',
  '831',
  '878',
  '879',
  '884',
  '890',
  '893',
]);

const US_ZIP = /^([0-9]{3})[0-9]{2}(-?[0-9]{4})?$/;

/**
 * `zip3`: a US ZIP code (`12345` or ZIP+4 `12345-6789`) → its first three digits, or `000` for a restricted prefix.
 * A postal code that is not a US ZIP (e.g. `3999`, `K1A 0B1`) → undefined (withheld): its truncation has no
 * Safe Harbor meaning.
 */
export function zip3(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = US_ZIP.exec(value.trim());
  const prefix = m?.[1];
  if (prefix === undefined) return undefined;
  return RESTRICTED_ZIP3.has(prefix) ? '000' : prefix;
}

/** `pseudonym` on a string leaf: the keyed token. Non-strings → undefined. */
export function pseudonym(value: unknown, ctx: ProjectionContext): string | undefined {
  return typeof value === 'string' ? ctx.pseudonymize(value) : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `pseudonym` on a Reference (FHIR R4 §2.3.0): only `reference`, as its pseudonym (`Type/<token>`), and `type` are
 * kept. `display`, `identifier`, `id`, `extension` and every primitive extension are removed: each can name the target
 * (an extension is free content the token must not carry along). A local reference (`#id`, a resource contained in
 * the same message) is kept as is. Returns undefined when nothing is left.
 */
export function pseudonymReference(value: unknown, ctx: ProjectionContext): Record<string, unknown> | undefined {
  if (!isObject(value)) return undefined;
  const out: Record<string, unknown> = {};
  const ref = value['reference'];
  if (typeof ref === 'string') out['reference'] = ref.startsWith('#') ? ref : ctx.pseudonymize(ref);
  const type = value['type'];
  if (typeof type === 'string') out['type'] = type;
  return Object.keys(out).length === 0 ? undefined : out;
}

/**
 * `pseudonym` on an Identifier (FHIR R4 §2.24.0.12): only `system`, `value` (as its pseudonym) and `type` are kept;
 * `use`, `period`, `assigner` (it narrows who the person is), `id`, `extension` and primitive extensions are removed.
 * `type` arrives already projected: under a de-identified profile that is its codings without display (deid.ts).
 * Returns undefined when nothing is left.
 */
export function pseudonymIdentifier(value: unknown, ctx: ProjectionContext): Record<string, unknown> | undefined {
  if (!isObject(value)) return undefined;
  const out: Record<string, unknown> = {};
  const system = value['system'];
  if (typeof system === 'string') out['system'] = system;
  const v = value['value'];
  if (typeof v === 'string') out['value'] = ctx.pseudonymize(v);
  const type = value['type'];
  if (isObject(type)) out['type'] = type;
  return Object.keys(out).length === 0 ? undefined : out;
}

/**
 * `year` on a Period: `start` and `end` reduced to their year; every other part (id, extensions, the primitive
 * extensions of start/end, which could carry the exact instant) removed. Returns undefined when nothing is left.
 */
export function yearPeriod(value: unknown): Record<string, string> | undefined {
  if (!isObject(value)) return undefined;
  const start = year(value['start']);
  const end = year(value['end']);
  if (start === undefined && end === undefined) return undefined;
  const out: Record<string, string> = {};
  if (start !== undefined) out['start'] = start;
  if (end !== undefined) out['end'] = end;
  return out;
}
