// The per-message walk of a compiled projection: a tree of allowed nodes keyed by FHIR JSON property name
// (FHIR R4 §2.6 JSON representation), built once by tree.ts. No string parsing, no index lookups here: one
// property lookup per input key (plus one per discriminator of a value-filtered item). Everything emitted is a fresh copy; nothing of the input is mutated or shared.
import { isJsonNumber } from '../wire/json.js';
import type { ProjectionContext } from './types.js';

export type Json = Record<string, unknown>;

/** A transform on a kept value (primitive, or the already-projected object). `undefined` withholds it. */
export type Leaf = (value: unknown, ctx: ProjectionContext) => unknown;

/** A value filter (profile `where`): each [discriminator child, allowed values] must hold for an item to be kept. */
export type ItemFilter = readonly (readonly [string, ReadonlySet<string>])[];

/** A profile's identifier rule (identifiers.ts): true when this input Identifier may be delivered. */
export type IdentifierTest = (v: unknown) => boolean;

export interface Node {
  /** Keep every child not listed in `kids`, whole (the path or an ancestor is allowed). */
  readonly all: boolean;
  /** Children with their own rules, by JSON property name (null-prototype object). */
  readonly kids: Readonly<Record<string, Node>> | undefined;
  /** For `extension` / `modifierExtension` elements: the rule for items whose `url` is the key. */
  readonly byUrl: Readonly<Record<string, Node>> | undefined;
  /** Transform applied to each kept value at this node. */
  readonly leaf: Leaf | undefined;
  /** Removes the element even under an allowed ancestor (`drop`, or a transform that cannot apply to the type). */
  readonly drop: boolean;
  /** `_x` primitive-extension arrays: keep index alignment with `x` (withheld items become null). */
  readonly sparse: boolean;
  /** Keys kept whenever anything else of the object is (`url` of an Extension, `resourceType` of a Resource). */
  readonly companions: readonly string[] | undefined;
  /** Items that fail this filter are removed before anything else applies (judged on the input item). */
  readonly where: ItemFilter | undefined;
  /** On elements of type Identifier under a profile with `identifiers:`: items failing it are removed, like `where`. */
  readonly ident?: IdentifierTest | undefined;
  /** On elements of type Resource (`Bundle.entry.resource`) under an identifier rule: the node for the item's own type. */
  readonly byResourceType?: ((resourceType: string) => Node) | undefined;
}

/** Deep copy of JSON data; drops empty objects/arrays (never emitted) and `__proto__` keys. A JsonNumber (a lexeme, immutable in use) is shared. */
export function copyJson(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || isJsonNumber(v)) return v;
  if (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    const a: unknown[] = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) a[i] = copyJson(v[i]) ?? null;
    return a;
  }
  let o: Json | undefined;
  const src = v as Json;
  for (const k of Object.keys(src)) {
    if (k === '__proto__') continue;
    const c = copyJson(src[k]);
    if (c !== undefined) (o ??= {})[k] = c;
  }
  return o;
}

function pick(v: Json, n: Node): Node {
  if (n.byUrl === undefined) return n;
  const url = v['url'];
  return (typeof url === 'string' ? n.byUrl[url] : undefined) ?? n;
}

/** True when `v` is an object whose every discriminator is a string among its allowed values (absent → false). */
function passes(v: unknown, where: ItemFilter): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const [key, values] of where) {
    const d = Object.hasOwn(v, key) ? (v as Json)[key] : undefined;
    if (typeof d !== 'string' || !values.has(d)) return false;
  }
  return true;
}

function projectItem(v: unknown, n: Node, ctx: ProjectionContext): unknown {
  if (n.where !== undefined && !passes(v, n.where)) return undefined;
  if (n.ident !== undefined && !n.ident(v)) return undefined;
  let out: unknown;
  let m = n;
  if (typeof v === 'object' && v !== null && !isJsonNumber(v)) {
    m = pick(v as Json, n);
    if (m.byResourceType !== undefined) {
      const rt = (v as Json)['resourceType'];
      if (typeof rt !== 'string') return undefined;
      m = m.byResourceType(rt);
    }
    out = Array.isArray(v) ? undefined : projectObject(v as Json, m, ctx);
  } else {
    out = n.all ? v : undefined;
  }
  if (out !== undefined && m.leaf !== undefined) out = m.leaf(out, ctx);
  return out;
}

function projectArray(arr: readonly unknown[], n: Node, ctx: ProjectionContext): unknown[] | undefined {
  const out: unknown[] = [];
  let kept = 0;
  const keepNull = n.sparse || (n.all && n.leaf === undefined && n.where === undefined && n.ident === undefined);
  for (const item of arr) {
    if (item === null) {
      if (keepNull) out.push(null);
      continue;
    }
    const r = projectItem(item, n, ctx);
    if (r === undefined) {
      if (n.sparse) out.push(null);
      continue;
    }
    out.push(r);
    kept++;
  }
  return kept === 0 ? undefined : out;
}

/** Projects the value of one element (single or repeating). */
export function projectValue(v: unknown, n: Node, ctx: ProjectionContext): unknown {
  if (n.drop) return undefined;
  return Array.isArray(v) ? projectArray(v, n, ctx) : projectItem(v, n, ctx);
}

/**
 * True when every modifierExtension of the input survived (each kept item keeps its url). If not, what remains of
 * the element would mean something else (FHIR R4 §2.18.0.5), so the caller withholds the whole element.
 */
export function modifiersIntact(input: unknown, output: unknown): boolean {
  if (!Array.isArray(input) || !Array.isArray(output) || output.length !== input.length) return false;
  for (const item of output) {
    if (typeof item !== 'object' || item === null || typeof (item as Json)['url'] !== 'string') return false;
  }
  return true;
}

/** Projects one object; undefined when nothing is kept or a modifierExtension it carries is withheld. */
export function projectObject(obj: Json, n: Node, ctx: ProjectionContext): Json | undefined {
  if (n.all && n.kids === undefined) return copyJson(obj) as Json | undefined;
  const kids = n.kids;
  let out: Json | undefined;
  for (const key of Object.keys(obj)) {
    if (key === '__proto__') continue;
    const v = obj[key];
    const k = kids?.[key];
    const r = k !== undefined ? projectValue(v, k, ctx) : n.all ? copyJson(v) : undefined;
    if (key === 'modifierExtension' && !modifiersIntact(v, r)) return undefined;
    if (r !== undefined) (out ??= {})[key] = r;
  }
  if (out === undefined || n.companions === undefined) return out;
  let lead: Json | undefined;
  for (const c of n.companions) {
    const cv = obj[c];
    if (typeof cv === 'string' && !Object.hasOwn(out, c)) (lead ??= {})[c] = cv;
  }
  return lead === undefined ? out : Object.assign(lead, out);
}
