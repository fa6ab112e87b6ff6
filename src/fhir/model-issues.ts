// Turns the issues of @fhir-typescript/r4-core model validation (FHIR OperationOutcome.issue shape:
// severity, code from the IssueType value set http://hl7.org/fhir/R4/valueset-issue-type.html,
// details.text, expression) into one E_FHIR_INVALID error — or none. The library's details text can
// embed input (property names, and in places values), so the message is rebuilt from fixed wording:
// only the issue code, the expression paths (element names and indices) and names that match strict
// identifier patterns are used.
import { BrokerError } from '../wire/errors.js';
import { fhirElements } from './elements.js';
import { isJsonObject } from './resource.js';

/** The part of r4-core's FtsIssue this module reads. */
export interface ModelIssue {
  readonly severity: string | null;
  readonly code: string | null;
  readonly details?: { readonly text?: string | undefined } | undefined;
  readonly expression?: readonly string[] | undefined;
}

/** Severities that reject. `information` (r4-core's result for extensible/preferred bindings) and `warning` do not. */
const REJECTING: ReadonlySet<string> = new Set(['error', 'fatal']);

const DESCRIPTIONS: Readonly<Record<string, string>> = {
  required: 'a required element is missing',
  invalid: 'not a valid value for its FHIR type',
  'code-invalid': 'code not in the required value set',
  structure: 'wrong JSON structure (array where a single value is expected, or the reverse)',
  value: 'not a valid value',
  invariant: 'a FHIR invariant is violated',
};

const PATH = /^[A-Z][A-Za-z]*(\.[a-z][A-Za-z0-9]*(\[\d+\])?)*$/;
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const ISSUE_CODE = /^[a-z][a-z-]{0,31}$/;
const REQUIRED_PROPERTY = /^Missing required property '([^']*)'/;
const BOUND_PROPERTY = /^([^ ]*) \(.*\) does not contain code from bound value set ([A-Za-z0-9_]*)$/;
const INVALID_PRIMITIVE = /^Invalid value in primitive type ([A-Za-z0-9]+)$/;

/**
 * The error for the first rejecting issue, or undefined when none rejects. `resource` is the JSON the
 * issues were computed from (used to name choice elements by their JSON name and to re-check strings).
 */
export function modelIssuesToError(
  issues: readonly ModelIssue[],
  resource: Record<string, unknown>,
): BrokerError | undefined {
  for (const issue of issues) {
    if (issue.severity === null || !REJECTING.has(issue.severity)) continue;
    if (isFalseStringRejection(issue, resource)) continue;
    return toError(issue, resource);
  }
  return undefined;
}

function toError(issue: ModelIssue, resource: Record<string, unknown>): BrokerError {
  const code = issue.code !== null && ISSUE_CODE.test(issue.code) ? issue.code : 'unknown';
  const text = issue.details?.text ?? '';
  let description = DESCRIPTIONS[code] ?? `fails FHIR R4 model validation (issue type ${code})`;
  // `required` and `code-invalid` name the parent in `expression` and the element in the details text.
  let property: string | undefined;
  if (code === 'required') property = REQUIRED_PROPERTY.exec(text)?.[1];
  if (code === 'code-invalid') {
    const m = BOUND_PROPERTY.exec(text);
    property = m?.[1];
    if (m?.[2] !== undefined && IDENTIFIER.test(m[2])) description += ` (${m[2]})`;
  }
  if (code === 'invalid') {
    const type = INVALID_PRIMITIVE.exec(text)?.[1];
    if (type !== undefined && Object.hasOwn(fhirElements().primitives, type)) description = `not a valid FHIR ${type}`;
  }
  const paths = (issue.expression ?? [])
    .map((e) => (property !== undefined && IDENTIFIER.test(property) ? `${e}.${property}` : e))
    .map((e) => jsonPath(e, resource))
    .filter((e) => PATH.test(e));
  const path = paths.length > 0 ? paths.join(', ') : String(resource['resourceType']);
  return new BrokerError('E_FHIR_INVALID', `${path}: ${description}`, { path });
}

interface Step {
  readonly name: string;
  readonly index: number | undefined;
}

function steps(expression: string): Step[] | undefined {
  if (!PATH.test(expression)) return undefined;
  return expression
    .split('.')
    .slice(1)
    .map((s) => {
      const b = s.indexOf('[');
      return b < 0 ? { name: s, index: undefined } : { name: s.slice(0, b), index: Number(s.slice(b + 1, -1)) };
    });
}

/**
 * r4-core names a choice element by its base name (`Observation.effective`); the publisher knows it by its
 * JSON name (`effectiveDateTime`). Resolves each step against the JSON and renames choice steps.
 */
function jsonPath(expression: string, resource: Record<string, unknown>): string {
  const parts = steps(expression);
  if (parts === undefined) return expression;
  let out = String(resource['resourceType']);
  let node: unknown = resource;
  for (const { name, index } of parts) {
    let key = name;
    if (isJsonObject(node) && !Object.hasOwn(node, name)) {
      const found = Object.keys(node).find((k) => k.startsWith(name) && isTypeSuffix(k.slice(name.length)));
      if (found !== undefined) key = found;
    }
    out += `.${key}` + (index === undefined ? '' : `[${index}]`);
    node = isJsonObject(node) ? node[key] : undefined;
    if (index !== undefined) node = Array.isArray(node) ? (node[index] as unknown) : undefined;
  }
  return out;
}

/** `DateTime` / `Quantity`: the type part of a choice element's JSON name. */
function isTypeSuffix(suffix: string): boolean {
  if (!/^[A-Z]/.test(suffix)) return false;
  const { types, primitives } = fhirElements();
  return Object.hasOwn(types, suffix) || Object.hasOwn(primitives, suffix.charAt(0).toLowerCase() + suffix.slice(1));
}

function valueAt(expression: string, resource: Record<string, unknown>): unknown {
  const parts = steps(jsonPath(expression, resource));
  let node: unknown = resource;
  for (const { name, index } of parts ?? []) {
    node = isJsonObject(node) ? node[name] : undefined;
    if (index !== undefined) node = Array.isArray(node) ? (node[index] as unknown) : undefined;
  }
  return parts === undefined ? undefined : node;
}

/**
 * r4-core checks `string` and `markdown` with the FHIR regex `[ \r\n\t\S]+` under JavaScript semantics,
 * where `\S` excludes every Unicode space (U+00A0, U+202F …). FHIR regexes are XML Schema regexes, where
 * `\S` excludes only space, tab, CR and LF, so any non-empty string matches. A non-empty string value
 * rejected by that check is valid FHIR R4 and is not rejected here.
 */
function isFalseStringRejection(issue: ModelIssue, resource: Record<string, unknown>): boolean {
  if (issue.code !== 'invalid') return false;
  const type = INVALID_PRIMITIVE.exec(issue.details?.text ?? '')?.[1];
  if (type !== 'string' && type !== 'markdown') return false;
  const exprs = issue.expression ?? [];
  return (
    exprs.length > 0 &&
    exprs.every((e) => {
      const v = valueAt(e, resource);
      return typeof v === 'string' && v.length > 0;
    })
  );
}
