// The catalog's canonical patient matching rule (`patients:` in a subjects file, e.g. subjects/patients.yaml):
// how the broker tells which patient a resource is about, so the registry (and right of access, 45 CFR
// 164.524) joins one patient's data across services. Shape check and cross-field rules; the resolution
// itself is src/registry/patient-key.ts. docs/patient-rights.md explains the rule.
import { z } from 'zod';
import type { CatalogIssue } from './issues.js';
import type { PatientMatchDef } from './types.js';
import type { YamlSource } from './yaml-source.js';
import { zodIssues } from './yaml-source.js';

export const patientsSchema = z.strictObject({
  /** `reference`: the literal `Patient/<id>`; `identifier`: an identifier of `system` (e.g. an MRN). */
  match: z.enum(['reference', 'identifier']).default('reference'),
  /** The identifier system (a URI) when match is `identifier`. */
  system: z.string().min(1, 'expected an identifier system URI').optional(),
  /** A patient-compartment resource whose patient does not resolve: accepted and counted, or rejected. */
  unresolved: z.enum(['accept', 'reject']).default('accept'),
});

/** The rule declared at `patients` in `source`, or the issues that keep it from compiling. */
export function compilePatients(source: YamlSource, raw: unknown): { def?: PatientMatchDef; issues: CatalogIssue[] } {
  const r = patientsSchema.safeParse(raw ?? {});
  if (!r.success) return { issues: zodIssues(source, ['patients'], r.error) };
  const { match, system, unresolved } = r.data;
  if (match === 'identifier') {
    if (system === undefined)
      return {
        issues: [
          source.issue(
            ['patients', 'system'],
            "missing: match 'identifier' needs the identifier system (a URI, e.g. an MRN system)",
          ),
        ],
      };
    if (system.includes('|'))
      return {
        issues: [
          source.issue(
            ['patients', 'system'],
            "expected a URI without '|' (it separates system and value in the canonical form)",
          ),
        ],
      };
    return { def: Object.freeze({ match, system, unresolved }), issues: [] };
  }
  if (system !== undefined)
    return {
      issues: [
        source.issue(['patients', 'system'], "only with match 'identifier' (match 'reference' uses Patient/<id>)"),
      ],
    };
  return { def: Object.freeze({ match, unresolved }), issues: [] };
}
