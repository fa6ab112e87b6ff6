// Splits a profile element path (docs/profiles.md grammar: FHIR element ids without slices, plus `name(url)` for
// extensions by URL) into steps. Runs at compile time only. A path it cannot read yields `undefined`: the caller
// then treats it as allowing nothing (fail safe).

export interface PathStep {
  /** Element name as written (`value`, `valueQuantity`, `extension`). */
  readonly name: string;
  /** True for `name[x]` (every type of a choice element). */
  readonly choice: boolean;
  /** The URL of `extension(url)` / `modifierExtension(url)`. */
  readonly url: string | undefined;
}

const STEP = /^([A-Za-z][A-Za-z0-9_]*)(\[x\])?(?:\((.+)\))?$/;

/** `Patient.extension(http://a.b/c).value[x]` → [Patient], [extension, url], [value, choice]. */
export function parsePath(path: string): PathStep[] | undefined {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      if (depth < 0) return undefined;
    } else if (c === '.' && depth === 0) {
      parts.push(path.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) return undefined;
  parts.push(path.slice(start));
  const steps: PathStep[] = [];
  for (const part of parts) {
    const m = STEP.exec(part);
    if (m === null || m[1] === undefined) return undefined;
    const url = m[3];
    if (m[2] !== undefined && url !== undefined) return undefined;
    steps.push({ name: m[1], choice: m[2] !== undefined, url });
  }
  return steps;
}
