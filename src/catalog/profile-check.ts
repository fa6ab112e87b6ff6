// Checks one minimum-necessary projection profile (fhir-profiles/<id>.yaml) against FHIR R4 and the element
// classification, and builds its frozen ProfileDef: allow paths exist and start with the profile's type,
// transforms suit the element's type, contained allow-lists are well formed, value filters (`where`,
// item-filter.ts) name a repeating element and a discriminator child, and a de-identified profile lets
// no identifier through (deidentification.ts). Pure: the YAML source only supplies positions for issues.
import { isResourceType } from '../fhir/elements.js';
import { classifiedFor } from './classification.js';
import { deidentificationFindings, namesWithheldPart, unnamedExtensionFindings } from './deidentification.js';
import type { AllowedPath, TransformAt } from './deidentification.js';
import { resolveElementPath } from './element-path.js';
import { checkIdentifierRule } from './identifier-rule.js';
import { discriminatorError, filterTargetError } from './item-filter.js';
import type { ResolvedPath } from './element-path.js';
import { covers, overlap, pathKey, renderPath } from './path-match.js';
import type { CatalogIssue } from './issues.js';
import type { ProfileInput } from './schema.js';
import type { ClassificationDef, ProfileDef, TransformName } from './types.js';
import type { YamlSource } from './yaml-source.js';

export const DEFAULT_PROFILE_URL_BASE = 'https://phi-broker.dev/fhir/StructureDefinition/';

/** year: dates and dateTimes become `YYYY` (still valid); a Period keeps the years of start and end. `instant` cannot hold a bare year: drop it. */
const YEAR_TYPES: ReadonlySet<string> = new Set(['date', 'dateTime', 'Period']);
/** pseudonym: string-valued primitives that are not dates/times/binary/narrative, and whole Reference or Identifier elements. */
export const PSEUDONYM_TYPES: ReadonlySet<string> = new Set([
  'string',
  'id',
  'code',
  'uri',
  'url',
  'canonical',
  'oid',
  'uuid',
  'markdown',
  'Reference',
  'Identifier',
]);

/** Why `transform` does not suit the element at `resolved`, or undefined when it does. */
export function transformTypeError(transform: TransformName, resolved: ResolvedPath): string | undefined {
  const types = resolved.typeCodes;
  const last = resolved.steps[resolved.steps.length - 1];
  if (last === undefined) return 'a transform needs an element path, not the whole resource';
  switch (transform) {
    case 'drop':
      return undefined;
    case 'year':
      return types.every((t) => YEAR_TYPES.has(t))
        ? undefined
        : `year applies to date, dateTime and Period elements (an instant cannot hold a bare year: drop it); ${resolved.path} is ${types.join('|')}`;
    case 'zip3':
      return last.owner === 'Address' && last.name === 'postalCode'
        ? undefined
        : `zip3 applies only to Address.postalCode; ${resolved.path} is ${last.owner}.${last.name}`;
    case 'pseudonym':
      return types.every((t) => PSEUDONYM_TYPES.has(t))
        ? undefined
        : `pseudonym applies to string-valued primitives (string, id, code, uri, …) and Reference or Identifier elements; ${resolved.path} is ${types.join('|')}`;
  }
}

/** Issues for one profile file, and its ProfileDef (built even when issues were found, for cross-checks). */
export function checkProfile(
  source: YamlSource,
  input: ProfileInput,
  classification: ClassificationDef | undefined,
): { def: ProfileDef; issues: CatalogIssue[] } {
  const issues: CatalogIssue[] = [];
  const type = input.resourceType;
  const typeOk = isResourceType(type);
  if (!typeOk) issues.push(source.issue(['resourceType'], `'${type}' is not a FHIR R4 resource type`));

  const resolve = (path: string, root: string, at: PropertyKey[]): ResolvedPath | undefined => {
    const r = resolveElementPath(path);
    if (!r.ok) {
      issues.push(source.issue(at, `'${path}' is not a FHIR R4 element path: ${r.error}`));
      return undefined;
    }
    if (r.root !== root) {
      issues.push(source.issue(at, `'${path}' must start with ${root}`));
      return undefined;
    }
    return r;
  };

  // Allowed paths, per root type (the profile's type and each contained type).
  const allowed = new Map<string, AllowedPath[]>();
  const addAllowed = (paths: readonly string[], root: string, base: PropertyKey[]): void => {
    const list: AllowedPath[] = [];
    paths.forEach((path, i) => {
      const r = resolve(path, root, [...base, i]);
      if (r === undefined) return;
      const key = pathKey(r);
      // In a de-identified profile a path inside another one can name free text or an extension the outer one does
      // not pass (deidentification.ts namesWithheldPart): both are kept, the inner one deliberately.
      const earlier = list.find((p) => {
        if (covers(p.key, key)) return !(input.deidentified && namesWithheldPart(key));
        return covers(key, p.key) && !(input.deidentified && namesWithheldPart(p.key));
      });
      if (earlier !== undefined) {
        issues.push(
          source.issue(
            [...base, i],
            `'${path}' overlaps ${renderPath(earlier.key)} (${String(earlier.yamlPath.at(-1))}): allowing a path allows its whole subtree; keep one`,
          ),
        );
        return;
      }
      list.push({ key, yamlPath: [...base, i] });
    });
    allowed.set(root, list);
  };
  if (typeOk) addAllowed(input.allow, type, ['allow']);

  for (const [ctype, paths] of Object.entries(input.contained)) {
    if (!isResourceType(ctype)) {
      issues.push(source.issue(['contained', ctype], `'${ctype}' is not a FHIR R4 resource type`));
      continue;
    }
    addAllowed(paths, ctype, ['contained', ctype]);
  }
  if (typeOk && Object.keys(input.contained).length > 0) {
    const containedOk = (allowed.get(type) ?? []).some(
      (a) => overlap(a.key, { root: type, steps: stepsOf(`${type}.contained`) }) !== undefined,
    );
    if (!containedOk)
      issues.push(
        source.issue(
          ['contained'],
          `contained resources are listed but ${type}.contained is not allowed: add it to allow (or remove contained)`,
        ),
      );
  }

  // Transforms: type-checked, inside an allowed path, not nested in one another.
  const transforms = new Map<string, TransformAt[]>();
  const roots = [type, ...Object.keys(input.contained)];
  const transformPaths: { key: ReturnType<typeof pathKey>; path: string }[] = [];
  /** The path's root type when it is the profile's type or a contained type; else an issue and undefined. */
  const rootOf = (path: string, at: (string | number)[]): string | undefined => {
    const root = path.split('.')[0] ?? '';
    if (roots.includes(root)) return root;
    issues.push(
      source.issue(
        at,
        `'${path}' must start with ${type}${roots.length > 1 ? ` or a contained type (${roots.slice(1).join(', ')})` : ''}`,
      ),
    );
    return undefined;
  };
  for (const [path, transform] of Object.entries(input.transforms)) {
    const at = ['transforms', path];
    const root = rootOf(path, at);
    if (root === undefined) continue;
    const r = resolve(path, root, at);
    if (r === undefined) continue;
    const typeError = transformTypeError(transform, r);
    if (typeError !== undefined) {
      issues.push(source.issue(at, typeError));
      continue;
    }
    const key = pathKey(r);
    const inAllowed = (allowed.get(root) ?? []).some((a) => overlap(a.key, key) !== undefined);
    if (!inAllowed)
      issues.push(source.issue(at, `'${path}' is not inside any allowed path: the transform would never apply`));
    const nested = transformPaths.find((t) => covers(t.key, key) || covers(key, t.key));
    if (nested !== undefined)
      issues.push(source.issue(at, `'${path}' is inside or around the transform on '${nested.path}': keep one`));
    transformPaths.push({ key, path });
    const list = transforms.get(root) ?? [];
    list.push({ key, transform });
    transforms.set(root, list);
  }

  // Value filters: on a repeating element inside (or around) an allowed path, by a direct child primitive.
  for (const [path, filter] of Object.entries(input.where)) {
    const at = ['where', path];
    const root = rootOf(path, at);
    if (root === undefined) continue;
    const r = resolve(path, root, at);
    if (r === undefined) continue;
    const targetError = filterTargetError(r);
    if (targetError !== undefined) {
      issues.push(source.issue(at, targetError));
      continue;
    }
    if (!(allowed.get(root) ?? []).some((a) => overlap(a.key, pathKey(r)) !== undefined)) {
      issues.push(source.issue(at, `'${path}' is not inside any allowed path: the filter would never apply`));
    }
    for (const name of Object.keys(filter)) {
      const error = discriminatorError(r, name);
      if (error !== undefined) issues.push(source.issue([...at, name], error));
    }
  }

  const identifiers = input.identifiers === undefined ? undefined : checkIdentifierRule(input.identifiers, source);
  if (identifiers !== undefined) issues.push(...identifiers.issues);

  if (input.deidentified && classification !== undefined) {
    for (const [root, list] of allowed) {
      const findings = deidentificationFindings(
        list,
        transforms.get(root) ?? [],
        classifiedFor(classification.directIdentifiers, root),
        classifiedFor(classification.quasiIdentifiers, root),
      );
      for (const f of [...findings, ...unnamedExtensionFindings(list)])
        issues.push(source.issue(f.yamlPath, f.message));
    }
  }

  const def: ProfileDef = Object.freeze({
    id: input.id,
    resourceType: type,
    url: input.url ?? `${DEFAULT_PROFILE_URL_BASE}${input.id}`,
    description: input.description,
    deidentified: input.deidentified,
    markMasked: input.markMasked,
    allow: Object.freeze([...input.allow]),
    transforms: Object.freeze({ ...input.transforms }),
    contained: Object.freeze(
      Object.fromEntries(Object.entries(input.contained).map(([k, v]) => [k, Object.freeze([...v])])),
    ),
    where: Object.freeze(
      Object.fromEntries(
        Object.entries(input.where).map(([p, f]) => [
          p,
          Object.freeze(Object.fromEntries(Object.entries(f).map(([d, v]) => [d, Object.freeze([...v])]))),
        ]),
      ),
    ),
    ...(identifiers === undefined ? {} : { identifiers: identifiers.def }),
    file: source.file,
  });
  return { def, issues };
}

function stepsOf(path: string): ReturnType<typeof pathKey>['steps'] {
  const r = resolveElementPath(path);
  return r.ok ? r.steps : [];
}
