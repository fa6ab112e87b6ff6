// The de-identification rule for `deidentified: true` profiles (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)):
// a direct identifier the profile lets through (the allowed path is the identifier, inside it, or around it) must
// be covered by a `pseudonym` or `drop` transform; a quasi-identifier must be covered by `year`, `zip3` or `drop`.
// A choice path (`effective[x]`) must be covered for each of its types; a Period is covered when both its start
// and end are. Applied to the profile's own type and to each contained type it lets through.
// The projector also withholds, at every depth, free content and extensions a de-identified profile does not name
// (src/projection/deid.ts); the helpers at the end keep the load-time checks consistent with that: naming such a
// part inside an allowed path is meaningful (it passes, deliberately), and allowing `extension` without a URL is not.
import { covers, child, expandChoice, overlap, renderPath } from './path-match.js';
import type { PathKey } from './path-match.js';
import type { TransformName } from './types.js';

export interface AllowedPath {
  readonly key: PathKey;
  /** Where the path is written in the profile file (`allow[2]`, `contained.Location[0]`). */
  readonly yamlPath: readonly PropertyKey[];
}

export interface TransformAt {
  readonly key: PathKey;
  readonly transform: TransformName;
}

export interface DeidFinding {
  readonly yamlPath: readonly PropertyKey[];
  readonly message: string;
}

const DIRECT_OK: ReadonlySet<TransformName> = new Set(['pseudonym', 'drop']);
const QUASI_OK: ReadonlySet<TransformName> = new Set(['year', 'zip3', 'drop']);

/**
 * Every allowed path that lets a direct or quasi-identifier through untransformed.
 * `direct`/`quasi` are the classification's paths for the allowed paths' root type (classifiedFor()).
 */
export function deidentificationFindings(
  allowed: readonly AllowedPath[],
  transforms: readonly TransformAt[],
  direct: readonly PathKey[],
  quasi: readonly PathKey[],
): DeidFinding[] {
  const findings: DeidFinding[] = [];
  const seen = new Set<string>();
  const add = (yamlPath: readonly PropertyKey[], message: string): void => {
    const k = `${yamlPath.join('\u0000')}\u0001${message}`;
    if (!seen.has(k)) findings.push({ yamlPath, message });
    seen.add(k);
  };
  for (const a of allowed) {
    for (const d of direct) {
      const region = overlap(a.key, d);
      if (region === undefined) continue;
      for (const u of uncovered(region, transforms, DIRECT_OK, false)) {
        add(
          a.yamlPath,
          `lets direct identifier ${renderPath(d)} through at ${renderPath(u)}: a de-identified profile must pseudonymise or drop it (transforms: {${renderPath(u)}: drop|pseudonym})`,
        );
      }
    }
    for (const q of quasi) {
      const region = overlap(a.key, q);
      if (region === undefined) continue;
      for (const u of uncovered(region, transforms, QUASI_OK, true)) {
        add(
          a.yamlPath,
          `lets quasi-identifier ${renderPath(q)} through at ${renderPath(u)} untransformed: a de-identified profile must generalise it (year for dates, zip3 for postal codes) or drop it`,
        );
      }
    }
  }
  return findings;
}

/** The parts of `region` no acceptable transform covers (empty when all are covered). */
function uncovered(
  region: PathKey,
  transforms: readonly TransformAt[],
  ok: ReadonlySet<TransformName>,
  lookIntoPeriod: boolean,
): PathKey[] {
  if (transforms.some((t) => ok.has(t.transform) && covers(t.key, region))) return [];
  const variants = expandChoice(region);
  if (variants !== undefined) return variants.flatMap((v) => uncovered(v, transforms, ok, lookIntoPeriod));
  const last = region.steps[region.steps.length - 1];
  if (lookIntoPeriod && last !== undefined && last.typeCodes.length === 1 && last.typeCodes[0] === 'Period') {
    return ['start', 'end'].flatMap((name) =>
      uncovered(child(region, name, 'Period', 'dateTime'), transforms, ok, lookIntoPeriod),
    );
  }
  return [region];
}

/**
 * FHIR types whose values are free content (HIPAA Safe Harbor: free text can carry any of the 18 identifiers):
 * `string` (CodeableConcept.text, Coding.display, Reference.display, Quantity.unit, Element.id …), `markdown`
 * (Annotation.text), `xhtml` (Narrative.div), `base64Binary` (Attachment.data: a scanned document or a photo).
 * A de-identified profile passes an element of these types only when a path names it exactly.
 */
export const FREE_CONTENT_TYPES: ReadonlySet<string> = new Set(['string', 'markdown', 'xhtml', 'base64Binary']);

/**
 * True when `key`, written inside another allowed path of a de-identified profile, still means something: it names
 * an extension by URL on the way, or ends at one element of a free-content type (`value[x]` names no single type).
 */
export function namesWithheldPart(key: PathKey): boolean {
  if (key.steps.some((s) => s.url !== undefined)) return true;
  const last = key.steps[key.steps.length - 1];
  const t = last?.typeCodes.length === 1 ? last.typeCodes[0] : undefined;
  return t !== undefined && FREE_CONTENT_TYPES.has(t);
}

/** Allowed paths ending at `extension` / `modifierExtension` without a URL: a de-identified profile would pass none of them. */
export function unnamedExtensionFindings(allowed: readonly AllowedPath[]): DeidFinding[] {
  const out: DeidFinding[] = [];
  for (const a of allowed) {
    const last = a.key.steps[a.key.steps.length - 1];
    if (
      last === undefined ||
      last.url !== undefined ||
      (last.name !== 'extension' && last.name !== 'modifierExtension')
    )
      continue;
    out.push({
      yamlPath: a.yamlPath,
      message: `allows ${renderPath(a.key)} without a URL: a de-identified profile passes only the extensions it names (${renderPath(a.key)}(<url>)), so this allows nothing`,
    });
  }
  return out;
}
