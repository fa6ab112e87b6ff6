// Catalog problems as data: every problem found while loading subjects/ and fhir-profiles/ is an issue naming
// the file, the path inside the file (`topics.Patient.subscribers[2].profile`) and what was expected. Loading
// collects all of them and fails once with CatalogError (code E_CATALOG_INVALID), so one run shows every fix
// to make. Catalog files are configuration, not PHI, so messages may quote ids and paths from them.
import { BrokerError } from '../wire/errors.js';

export interface CatalogIssue {
  /** The file, relative to the catalog folder's parent (`subjects/topics.yaml`, `fhir-profiles/patient-full.yaml`). */
  readonly file: string;
  /** Path inside the file in dotted/indexed form (`services[3].id`, `transforms["Patient.birthDate"]`); '' = the whole file. */
  readonly path: string;
  /** What is wrong and what was expected. */
  readonly message: string;
  /** 1-based line in the file, when known. */
  readonly line?: number;
}

/** `<file>: <path>: <message> (line N)`: one line per issue, as the CLI prints them. */
export function formatIssue(issue: CatalogIssue): string {
  const line = issue.line === undefined ? '' : ` (line ${issue.line})`;
  return `${issue.file}: ${issue.path === '' ? '(file)' : issue.path}: ${issue.message}${line}`;
}

/** Orders issues by file, then line, then path, so reports are stable. */
export function sortIssues(issues: readonly CatalogIssue[]): CatalogIssue[] {
  return [...issues].sort(
    (a, b) => cmp(a.file, b.file) || (a.line ?? 0) - (b.line ?? 0) || cmp(a.path, b.path) || cmp(a.message, b.message),
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The catalog is invalid: `issues` lists every problem; `message` lists them one per line. */
export class CatalogError extends BrokerError {
  readonly issues: readonly CatalogIssue[];

  constructor(issues: readonly CatalogIssue[]) {
    const sorted = sortIssues(issues);
    const head = `catalog invalid: ${sorted.length} problem${sorted.length === 1 ? '' : 's'}`;
    super(
      'E_CATALOG_INVALID',
      [head, ...sorted.map((i) => `  ${formatIssue(i)}`)].join('\n'),
      sorted[0] === undefined ? undefined : { path: sorted[0].file },
    );
    this.issues = Object.freeze(sorted.map((i) => Object.freeze({ ...i })));
  }
}

export function isCatalogError(e: unknown): e is CatalogError {
  return e instanceof CatalogError;
}

/** `['topics', 'Patient', 'subscribers', 2, 'profile']` → `topics.Patient.subscribers[2].profile`. */
export function formatYamlPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += /^[A-Za-z_][A-Za-z0-9_-]*$/.test(s) ? (out === '' ? s : `.${s}`) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}
