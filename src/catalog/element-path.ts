// The element-path grammar of the catalog (profiles' allow-lists and transforms, the classification), resolved
// against the FHIR R4 (4.0.1) element index (src/fhir/elements.ts). Pure: no I/O beyond the index, which is
// loaded once. The projection engine reads paths with the same grammar; docs/catalog.md describes it:
//
//   path  := ResourceType ( '.' step )*
//   step  := name                  an element of the type reached so far (datatype or backbone element)
//          | name '[x]'            a choice element with all its types (`Observation.value[x]`)
//          | name TypeCode         a choice element with one type (`Observation.valueQuantity`); may descend
//          | ('extension' | 'modifierExtension') '(' url ')'   only the extensions with that url
//
// A path stops at a primitive (its `_x` id/extension travel with it) and at a resource (`contained`,
// `Bundle.entry.resource`: contained resources have their own allow-lists). Content references
// (`Questionnaire.item.item`) are followed like any backbone element.
import { choiceJsonName, fhirElements, isPrimitiveType, isResourceType } from '../fhir/elements.js';
import type { ElementDef } from '../fhir/elements.js';

export interface PathStep {
  /** Element name as the index spells it (`value` for `valueQuantity` and `value[x]`). */
  readonly name: string;
  /** The type or backbone path that declares the element (`Address` for `Patient.address.postalCode`). */
  readonly owner: string;
  /** JSON property names the step can appear as (`['valueQuantity']`, every `value…` for `value[x]`, `['name']`). */
  readonly jsonNames: readonly string[];
  /** Type codes reached by this step (one when a choice type was named). */
  readonly typeCodes: readonly string[];
  /** True when the element repeats (max > 1). */
  readonly repeats: boolean;
  /** True when the element is a choice `name[x]`. */
  readonly choice: boolean;
  /** The one type named for a choice element (`Quantity` for `valueQuantity`); absent for `value[x]`. */
  readonly choiceType?: string;
  /** The extension URL named in parentheses. */
  readonly url?: string;
}

export interface ResolvedPath {
  readonly ok: true;
  readonly path: string;
  /** The root type (a resource type for resolveElementPath, any type for resolveRelativePath). */
  readonly root: string;
  readonly steps: readonly PathStep[];
  /** Types reached by the last step (the root when there is no step). */
  readonly typeCodes: readonly string[];
  /** True when the last element repeats. */
  readonly repeats: boolean;
}

export interface PathError {
  readonly ok: false;
  /** What failed and what was expected, naming the step (never a value: paths are configuration). */
  readonly error: string;
  /** Index of the failing step (0 = the resource type). */
  readonly step: number;
}

interface RawStep {
  readonly text: string;
  readonly name: string;
  readonly url?: string;
}

/** Splits a path into its steps; dots inside `(...)` (extension URLs) do not split. */
export function splitPath(path: string): { steps: RawStep[] } | { error: string } {
  const steps: RawStep[] = [];
  let start = 0;
  let depth = 0;
  for (let i = 0; i <= path.length; i++) {
    const c = path[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (depth < 0) return { error: `unbalanced ')' at character ${i + 1}` };
    if (depth > 1) return { error: `nested '(' at character ${i + 1}` };
    if ((c === '.' && depth === 0) || i === path.length) {
      if (depth !== 0) return { error: `unclosed '(' in step ${steps.length + 1}` };
      const text = path.slice(start, i);
      const m = /^([A-Za-z][A-Za-z0-9_]*(?:\[x\])?)(?:\(([^()\s]+)\))?$/.exec(text);
      if (m === null) {
        return {
          error:
            text === ''
              ? `empty step ${steps.length + 1} (two dots, or a dot at an end)`
              : `step ${steps.length + 1} '${text}' is not an element name, name[x] or extension(url)`,
        };
      }
      steps.push(m[2] === undefined ? { text, name: m[1] ?? '' } : { text, name: m[1] ?? '', url: m[2] });
      start = i + 1;
    }
  }
  return { steps };
}

/** Resolves `<ResourceType>(.step)*` against FHIR R4. */
export function resolveElementPath(path: string): ResolvedPath | PathError {
  const split = splitPath(path);
  if ('error' in split) return { ok: false, error: split.error, step: 0 };
  const [first, ...rest] = split.steps;
  if (first === undefined) return { ok: false, error: 'empty path', step: 0 };
  if (first.url !== undefined || !isResourceType(first.name)) {
    const hint = suggest(first.text, fhirElements().resources);
    return { ok: false, error: `'${first.text}' is not a FHIR R4 resource type${hint}`, step: 0 };
  }
  return resolveSteps(path, first.name, rest, 1);
}

/** Resolves a path relative to a type (`resolveRelativePath('Resource', 'meta.profile')`); '' is the type itself. */
export function resolveRelativePath(typeCode: string, relative: string): ResolvedPath | PathError {
  if (fhirElements().types[typeCode] === undefined)
    return { ok: false, error: `'${typeCode}' is not a FHIR R4 type with elements`, step: 0 };
  if (relative === '') return { ok: true, path: '', root: typeCode, steps: [], typeCodes: [typeCode], repeats: false };
  const split = splitPath(relative);
  if ('error' in split) return { ok: false, error: split.error, step: 0 };
  return resolveSteps(relative, typeCode, split.steps, 0);
}

function resolveSteps(
  path: string,
  root: string,
  raw: readonly RawStep[],
  firstIndex: number,
): ResolvedPath | PathError {
  const types = fhirElements().types;
  const steps: PathStep[] = [];
  let current: readonly string[] = [root];
  let where = root;
  for (let i = 0; i < raw.length; i++) {
    const step = raw[i] as RawStep;
    const index = i + firstIndex;
    const fail = (error: string): PathError => ({
      ok: false,
      error: `step ${index + 1} '${step.text}': ${error}`,
      step: index,
    });
    if (current.length !== 1) {
      return fail(
        `${where} has several types (${current.join(', ')}); name one (e.g. ${choiceExample(steps)}) to descend into it`,
      );
    }
    const owner = current[0] as string;
    if (isPrimitiveType(owner)) return fail(`${where} is a primitive (${owner}) and has no child elements`);
    if (owner === 'Resource' && i > 0) {
      return fail(
        `${where} holds whole resources; list them in the profile's contained map instead of descending into them`,
      );
    }
    const children = types[owner];
    if (children === undefined) return fail(`${where} is of type ${owner}, which the FHIR R4 index does not describe`);
    const resolved = resolveStep(owner, children, step);
    if (typeof resolved === 'string') return fail(resolved);
    steps.push(resolved);
    current = resolved.typeCodes;
    where = `${where}.${step.text}`;
  }
  const last = steps[steps.length - 1];
  return { ok: true, path, root, steps, typeCodes: current, repeats: last?.repeats ?? false };
}

function resolveStep(owner: string, children: Readonly<Record<string, ElementDef>>, step: RawStep): PathStep | string {
  const ownerName = owner;
  if (step.name.endsWith('[x]')) {
    const base = step.name.slice(0, -3);
    const def = children[base];
    if (def === undefined) return `${ownerName} has no element '${base}[x]'${suggest(base, Object.keys(children))}`;
    if (def.x !== 1) return `${ownerName}.${base} is not a choice element: write '${base}' without [x]`;
    if (step.url !== undefined) return 'only extension and modifierExtension take a (url)';
    return {
      name: base,
      owner,
      jsonNames: def.t.map((t) => choiceJsonName(base, t)),
      typeCodes: def.t,
      repeats: def.m === 1,
      choice: true,
    };
  }
  const def = children[step.name];
  if (def !== undefined) {
    if (def.x === 1)
      return `${ownerName}.${step.name} is a choice element: write '${step.name}[x]' or name one type (e.g. ${choiceJsonName(step.name, def.t[0] ?? '')})`;
    if (step.url !== undefined && !(def.t.length === 1 && def.t[0] === 'Extension'))
      return `'${step.name}' is not an extension: only extension and modifierExtension take a (url)`;
    const base = {
      name: step.name,
      owner,
      jsonNames: [step.name],
      typeCodes: def.t,
      repeats: def.m === 1,
      choice: false,
    };
    return step.url === undefined ? base : { ...base, url: step.url };
  }
  for (const [base, choice] of Object.entries(children)) {
    if (choice.x !== 1 || !step.name.startsWith(base)) continue;
    const type = choice.t.find((t) => choiceJsonName(base, t) === step.name);
    if (type === undefined) continue;
    if (step.url !== undefined) return 'only extension and modifierExtension take a (url)';
    return {
      name: base,
      owner,
      jsonNames: [step.name],
      typeCodes: [type],
      repeats: choice.m === 1,
      choice: true,
      choiceType: type,
    };
  }
  const names = Object.entries(children).flatMap(([n, d]) =>
    d.x === 1 ? [`${n}[x]`, ...d.t.map((t) => choiceJsonName(n, t))] : [n],
  );
  return `${ownerName} has no element '${step.name}'${suggest(step.name, names)}`;
}

function choiceExample(steps: readonly PathStep[]): string {
  const last = steps[steps.length - 1];
  return last === undefined ? 'a type' : choiceJsonName(last.name, last.typeCodes[0] ?? '');
}

/** ` (did you mean 'name'?)` for a near miss (edit distance ≤ 2, or same lower case), else ''. */
function suggest(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, c, bestDistance);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean '${best}'?)`;
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row.push(
        Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)),
      );
    }
    prev = row;
  }
  return prev[b.length] ?? cap;
}
