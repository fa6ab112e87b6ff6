// Relations between resolved element paths (src/catalog/element-path.ts) that the catalog checks need: do two
// paths overlap (one lies inside the other's subtree, choice types and extension URLs compatible), and does a
// transform at one path cover every value at another. A step without a choice type (`value[x]`) or without an
// extension URL (`extension`) stands for all of them.
import { choiceJsonName } from '../fhir/elements.js';
import type { PathStep, ResolvedPath } from './element-path.js';

export interface PathKey {
  readonly root: string;
  readonly steps: readonly PathStep[];
}

export function pathKey(resolved: ResolvedPath): PathKey {
  return { root: resolved.root, steps: resolved.steps };
}

/** Writes a key back in the path grammar (`Observation.effectivePeriod.start`, `Patient.extension(url)`). */
export function renderPath(key: PathKey): string {
  return [key.root, ...key.steps.map(renderStep)].join('.');
}

function renderStep(s: PathStep): string {
  if (s.choice) return s.choiceType === undefined ? `${s.name}[x]` : choiceJsonName(s.name, s.choiceType);
  return s.url === undefined ? s.name : `${s.name}(${s.url})`;
}

function compatible(a: PathStep, b: PathStep): boolean {
  return (
    a.name === b.name &&
    a.owner === b.owner &&
    (a.choiceType === undefined || b.choiceType === undefined || a.choiceType === b.choiceType) &&
    (a.url === undefined || b.url === undefined || a.url === b.url)
  );
}

function narrower(a: PathStep, b: PathStep): PathStep {
  if (a.choiceType === undefined && b.choiceType !== undefined) return b;
  if (a.url === undefined && b.url !== undefined) return b;
  return a;
}

/**
 * The values two paths have in common, or undefined: when one path is an ancestor of (or equal to) the other,
 * the deeper path narrowed by the other's choice types and URLs.
 */
export function overlap(a: PathKey, b: PathKey): PathKey | undefined {
  if (a.root !== b.root) return undefined;
  const [short, long] = a.steps.length <= b.steps.length ? [a, b] : [b, a];
  const steps: PathStep[] = [];
  for (let i = 0; i < long.steps.length; i++) {
    const l = long.steps[i] as PathStep;
    const s = short.steps[i];
    if (s === undefined) steps.push(l);
    else if (compatible(s, l)) steps.push(narrower(l, s));
    else return undefined;
  }
  return { root: a.root, steps };
}

/** True when every value at `specific` lies at or under `general`. */
export function covers(general: PathKey, specific: PathKey): boolean {
  if (general.root !== specific.root || general.steps.length > specific.steps.length) return false;
  return general.steps.every((g, i) => {
    const s = specific.steps[i] as PathStep;
    return (
      g.name === s.name &&
      g.owner === s.owner &&
      (g.choiceType === undefined || g.choiceType === s.choiceType) &&
      (g.url === undefined || g.url === s.url)
    );
  });
}

/** The key with its unnamed choice step (`value[x]`, always the last: a path cannot descend past it) split by type. */
export function expandChoice(key: PathKey): PathKey[] | undefined {
  const last = key.steps[key.steps.length - 1];
  if (last === undefined || !last.choice || last.choiceType !== undefined) return undefined;
  return last.typeCodes.map((t) => ({
    root: key.root,
    steps: [
      ...key.steps.slice(0, -1),
      { ...last, jsonNames: [choiceJsonName(last.name, t)], typeCodes: [t], choiceType: t },
    ],
  }));
}

/** `key` + one child element of the type it reaches (used to look inside a Period). */
export function child(key: PathKey, name: string, owner: string, typeCode: string): PathKey {
  return {
    root: key.root,
    steps: [...key.steps, { name, owner, jsonNames: [name], typeCodes: [typeCode], repeats: false, choice: false }],
  };
}
