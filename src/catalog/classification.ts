// Element classification (fhir-profiles/classification.yaml): direct identifiers (HIPAA Safe Harbor,
// 45 CFR 164.514(b)(2)(i)), quasi-identifiers (dates and geography a de-identified view must generalise) and the
// plaintext allow-list (values never encrypted on the wire). Paths are `<Type>.<elements>` or `*.<elements>`
// (the element on every resource type that has it); plaintext paths have no type: they apply to every resource.
import { fhirElements } from '../fhir/elements.js';
import { resolveElementPath, resolveRelativePath } from './element-path.js';
import { pathKey } from './path-match.js';
import type { PathKey } from './path-match.js';
import type { CatalogIssue } from './issues.js';
import type { ClassificationInput } from './schema.js';
import type { ClassificationDef } from './types.js';
import type { YamlSource } from './yaml-source.js';

/** The plaintext allow-list the wire format may rely on: routing and policy metadata, never PHI. */
export const REQUIRED_PLAINTEXT = ['resourceType', 'meta.profile', 'meta.security'] as const;

/** Checks every classification path; returns the frozen definition (even when issues were found). */
export function checkClassification(
  source: YamlSource,
  input: ClassificationInput,
): { def: ClassificationDef; issues: CatalogIssue[] } {
  const issues: CatalogIssue[] = [];
  for (const list of ['directIdentifiers', 'quasiIdentifiers'] as const) {
    const seen = new Set<string>();
    input[list].forEach((path, i) => {
      if (seen.has(path)) issues.push(source.issue([list, i], `duplicate path '${path}'`));
      seen.add(path);
      const error = checkClassifiedPath(path);
      if (error !== undefined) issues.push(source.issue([list, i], error));
    });
  }
  const seen = new Set<string>();
  input.plaintext.forEach((path, i) => {
    if (seen.has(path)) issues.push(source.issue(['plaintext', i], `duplicate path '${path}'`));
    seen.add(path);
    if (path === 'resourceType') return;
    const r = resolveRelativePath('Resource', path);
    if (!r.ok)
      issues.push(
        source.issue(
          ['plaintext', i],
          `expected 'resourceType' or an element every resource has (meta.profile, meta.security): ${r.error}`,
        ),
      );
    // The wire format (docs/wire-format.md, v1) leaves exactly these readable; the list documents that and
    // cannot widen it — a longer list would promise plaintext the envelope never gives.
    else if (!(REQUIRED_PLAINTEXT as readonly string[]).includes(path)) {
      issues.push(
        source.issue(
          ['plaintext', i],
          `'${path}' cannot be plaintext: envelope v1 leaves exactly ${REQUIRED_PLAINTEXT.join(', ')} unencrypted`,
        ),
      );
    }
  });
  for (const required of REQUIRED_PLAINTEXT) {
    if (!input.plaintext.includes(required))
      issues.push(source.issue(['plaintext'], `missing '${required}': the wire format routes and checks policy on it`));
  }
  const def: ClassificationDef = Object.freeze({
    directIdentifiers: Object.freeze([...input.directIdentifiers]),
    quasiIdentifiers: Object.freeze([...input.quasiIdentifiers]),
    plaintext: Object.freeze([...input.plaintext]),
  });
  return { def, issues };
}

function checkClassifiedPath(path: string): string | undefined {
  if (path.startsWith('*.')) {
    const relative = path.slice(2);
    if (fhirElements().resources.some((t) => resolveElementPath(`${t}.${relative}`).ok)) return undefined;
    const r = resolveRelativePath('DomainResource', relative);
    return `no FHIR R4 resource type has '${relative}'${r.ok ? '' : ` (${r.error})`}`;
  }
  const r = resolveElementPath(path);
  return r.ok ? undefined : `not a FHIR R4 element path: ${r.error}`;
}

/** The classified paths that apply to `resourceType` (`*.x` instantiated where the type has x). */
export function classifiedFor(paths: readonly string[], resourceType: string): PathKey[] {
  const out: PathKey[] = [];
  for (const path of paths) {
    const concrete = path.startsWith('*.') ? `${resourceType}.${path.slice(2)}` : path;
    if (!concrete.startsWith(`${resourceType}.`) && concrete !== resourceType) continue;
    const r = resolveElementPath(concrete);
    if (r.ok) out.push(pathKey(r));
  }
  return out;
}
