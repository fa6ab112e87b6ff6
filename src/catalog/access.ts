// Who may ask for a patient's right of access (45 CFR 164.524) through the SDK: `access:` in a subjects file
// (e.g. subjects/access.yaml), `requesters: [<service id> …]` — a patient portal acting on the patient's request.
// Shape (schema.ts) and cross-file rules (each requester a declared service, listed once, not the broker), so
// every mistake names its file, path and line. The broker enforces it (src/access/desk/service-requests.ts), and
// the generated NATS permissions let only these services publish their request subject (src/nats/permissions.ts).
import type { CatalogIssue } from './issues.js';
import { accessSchema } from './schema.js';
import { type AccessPolicyDef } from './types.js';
import { BROKER_ID } from '../wire/ids.js';
import type { YamlSource } from './yaml-source.js';
import { zodIssues } from './yaml-source.js';

/** The `access` declaration of one file, shape-checked; the services it names are checked by `checkAccess`. */
export function parseAccess(
  source: YamlSource,
  raw: unknown,
): { requesters?: readonly string[]; issues: CatalogIssue[] } {
  const r = accessSchema.safeParse(raw ?? {});
  if (!r.success) return { issues: zodIssues(source, ['access'], r.error) };
  return { requesters: r.data.requesters, issues: [] };
}

/** The compiled policy, or the issues: a requester must be a declared service (`isService`), listed once. */
export function checkAccess(
  source: YamlSource,
  requesters: readonly string[],
  isService: (id: string) => boolean,
): { def: AccessPolicyDef; issues: CatalogIssue[] } {
  const issues: CatalogIssue[] = [];
  const seen = new Set<string>();
  requesters.forEach((id, i) => {
    const at = ['access', 'requesters', i];
    if (seen.has(id)) issues.push(source.issue(at, `'${id}' is listed twice`));
    seen.add(id);
    if (id === BROKER_ID)
      issues.push(source.issue(at, `'${BROKER_ID}' is the broker itself, not a requesting service`));
    else if (!isService(id))
      issues.push(source.issue(at, `'${id}' is not a declared service (expected an id from services)`));
  });
  return { def: Object.freeze({ requesters: Object.freeze([...seen].sort()) }), issues };
}
