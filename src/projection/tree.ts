// Compiles allow-list paths and transforms of one resource type into the node tree project.ts walks. Paths are
// resolved against the FHIR R4 element index (src/fhir/elements.ts) to JSON property names: choice elements
// expand to `nameType` (FHIR R4 §2.24.0.4), primitives get their `_name` sibling (§2.6.2.1 primitive extensions),
// extensions by URL get a per-URL rule, value filters (`where`, FHIR slicing by a `value` discriminator) sit on the
// repeating element they name. A path that does not resolve allows nothing; a transform or filter whose path does
// not resolve removes the deepest element it did resolve (fail safe: never pass what cannot be interpreted).
import type { ItemFilterDef, TransformName } from '../catalog/types.js';
import { choiceJsonName, fhirElements, isPrimitiveType } from '../fhir/elements.js';
import { parsePath } from './path.js';
import type { PathStep } from './path.js';
import type { IdentifierTest, ItemFilter, Leaf, Node } from './project.js';
import { pseudonym, pseudonymIdentifier, pseudonymReference, year, yearPeriod, zip3 } from './transforms.js';

export interface MNode {
  /** Type code or backbone path of this element (`Element` for `_name` nodes). */
  readonly type: string;
  all: boolean;
  /**
   * An allow path ends exactly here (not through `[x]`), or a transform other than drop names it: the element was
   * chosen deliberately. De-identified profiles pass free text only when named (deid.ts).
   */
  named: boolean;
  transform: TransformName | undefined;
  sparse: boolean;
  readonly kids: Map<string, MNode>;
  byUrl: Map<string, MNode> | undefined;
  /** Discriminator → allowed values; every one must hold (filters on the same element are intersected). */
  where: Map<string, ReadonlySet<string>> | undefined;
}

interface Hit {
  readonly node: MNode;
  /** True for the `_name` sibling of a primitive (it is dropped when its primitive is transformed). */
  readonly ext: boolean;
}

export function mnode(type: string): MNode {
  return {
    type,
    all: false,
    named: false,
    transform: undefined,
    sparse: false,
    kids: new Map(),
    byUrl: undefined,
    where: undefined,
  };
}

function kid(parent: MNode, key: string, type: string): MNode {
  let k = parent.kids.get(key);
  if (k === undefined) {
    k = mnode(type);
    parent.kids.set(key, k);
  }
  return k;
}

/** Two transforms on one element: drop wins; two different ones cannot both apply, so the element is dropped. */
function combine(a: TransformName | undefined, b: TransformName | undefined): TransformName | undefined {
  if (a === undefined) return b;
  if (b === undefined || a === b) return a;
  return 'drop';
}

/** Both filters must hold: discriminators are united, the values of a discriminator both name are intersected. */
function both(a: MNode['where'], b: MNode['where']): MNode['where'] {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const m = new Map(a);
  for (const [d, values] of b) {
    const prev = m.get(d);
    m.set(d, prev === undefined ? values : new Set([...values].filter((v) => prev.has(v))));
  }
  return m;
}

function step(cur: MNode, s: PathStep, hits: Hit[]): void {
  const defs = fhirElements().types[cur.type];
  if (defs === undefined) return;
  const add = (key: string, type: string, repeats: boolean): void => {
    if (isPrimitiveType(type)) {
      hits.push({ node: kid(cur, key, type), ext: false });
      const e = kid(cur, '_' + key, 'Element');
      e.sparse = repeats;
      hits.push({ node: e, ext: true });
    } else {
      hits.push({ node: kid(cur, key, type), ext: false });
    }
  };
  const def = Object.hasOwn(defs, s.name) ? defs[s.name] : undefined;
  if (s.url !== undefined) {
    if ((s.name !== 'extension' && s.name !== 'modifierExtension') || def === undefined) return;
    const el = kid(cur, s.name, 'Extension');
    el.byUrl ??= new Map();
    let u = el.byUrl.get(s.url);
    if (u === undefined) {
      u = mnode('Extension');
      el.byUrl.set(s.url, u);
    }
    hits.push({ node: u, ext: false });
    return;
  }
  if (def !== undefined) {
    if (def.x === 1) {
      for (const t of def.t) add(choiceJsonName(s.name, t), t, def.m === 1);
    } else if (!s.choice && def.t.length === 1 && def.t[0] !== undefined) {
      add(s.name, def.t[0], def.m === 1);
    }
    return;
  }
  if (s.choice) return;
  // `valueQuantity`: one type of a choice element.
  for (const [base, d] of Object.entries(defs)) {
    if (d.x !== 1) continue;
    for (const t of d.t) if (choiceJsonName(base, t) === s.name) add(s.name, t, d.m === 1);
  }
}

type Def = { readonly t: readonly string[]; readonly x?: 1 };

/** JSON property name → type for one element definition (`value[x]` → valueQuantity, valueString …). */
export function jsonKeys(name: string, d: Def): [string, string][] {
  if (d.x === 1) return d.t.map((t) => [choiceJsonName(name, t), t]);
  const t = d.t[0];
  return d.t.length === 1 && t !== undefined ? [[name, t]] : [];
}

/** Resolves steps after the resource type; `undefined` hits mean the path did not resolve. */
function resolve(root: MNode, steps: readonly PathStep[]): { hits: Hit[]; deepest: Hit[] } {
  let hits: Hit[] = [{ node: root, ext: false }];
  let deepest = hits;
  for (let i = 1; i < steps.length; i++) {
    const s = steps[i];
    if (s === undefined) break;
    const next: Hit[] = [];
    // A step below a primitive continues from its `_name` sibling (its id and extensions).
    for (const h of hits) if (h.ext || !isPrimitiveType(h.node.type)) step(h.node, s, next);
    if (next.length === 0) return { hits: [], deepest };
    deepest = next;
    hits = next;
  }
  return { hits, deepest };
}

/** The compiled rules for one resource type. */
export interface TypeTree {
  readonly root: MNode;
  /** `<Type>.contained` is allowed (contained resources are then projected by their own type's rules). */
  containedAllowed: boolean;
}

export function newTypeTree(resourceType: string): TypeTree {
  return { root: mnode(resourceType), containedAllowed: false };
}

/** Adds one allowed path (ignored when it does not resolve: nothing is allowed by it). */
export function allowPath(tree: TypeTree, path: string): void {
  const steps = parsePath(path);
  if (steps === undefined || steps[0]?.name !== tree.root.type || steps[0].url !== undefined || steps[0].choice) return;
  if (steps.length >= 2 && steps[1]?.name === 'contained') {
    if (steps.length === 2 && steps[1].url === undefined && !steps[1].choice) tree.containedAllowed = true;
    return;
  }
  // Allowing the resource allows its whole subtree, `contained` included.
  if (steps.length === 1) tree.containedAllowed = true;
  const named = steps[steps.length - 1]?.choice !== true;
  for (const h of resolve(tree.root, steps).hits) {
    h.node.all = true;
    // The `_name` sibling (id, extensions) is not what the path names.
    if (named && !h.ext) h.node.named = true;
  }
}

/**
 * The nodes a transform or filter path names. Fail safe: a path that cannot be read (or is shorter than
 * `minSteps`) withholds the whole resource; one that resolves only part way withholds the deepest part found.
 */
function resolveOrWithhold(
  tree: TypeTree,
  steps: ReturnType<typeof parsePath>,
  minSteps: number,
): ReturnType<typeof resolve>['hits'] {
  if (steps === undefined || steps.length < minSteps) {
    tree.root.transform = 'drop';
    return [];
  }
  const { hits, deepest } = resolve(tree.root, steps);
  if (hits.length === 0) for (const h of deepest) h.node.transform = 'drop';
  return hits;
}

/** Adds one transform; its path is known to start with this tree's type. */
export function transformPath(tree: TypeTree, path: string, transform: TransformName): void {
  const hits = resolveOrWithhold(tree, parsePath(path), 1);
  for (const h of hits) {
    h.node.transform = combine(h.node.transform, h.ext ? 'drop' : transform);
    if (!h.ext && transform !== 'drop') h.node.named = true;
  }
}

/**
 * Adds one value filter; its path is known to start with this tree's type. A filter that cannot be read, names the
 * resource itself or a primitive (no child to discriminate on) withholds what it names.
 */
export function wherePath(tree: TypeTree, path: string, filter: ItemFilterDef): void {
  const hits = resolveOrWithhold(tree, parsePath(path), 2);
  if (hits.length === 0) return;
  const own = new Map<string, ReadonlySet<string>>();
  for (const [d, values] of Object.entries(filter)) own.set(d, new Set(values));
  for (const h of hits) {
    if (h.ext || isPrimitiveType(h.node.type)) h.node.transform = 'drop';
    else h.node.where = both(h.node.where, own);
  }
}

export function leafFor(transform: TransformName, type: string): Leaf | undefined {
  const stringPrimitive = fhirElements().primitives[type] === 'string';
  switch (transform) {
    case 'year':
      if (type === 'date' || type === 'dateTime') return year;
      return type === 'Period' ? yearPeriod : undefined;
    case 'zip3':
      return stringPrimitive ? zip3 : undefined;
    case 'pseudonym':
      if (stringPrimitive) return pseudonym;
      if (type === 'Reference') return pseudonymReference;
      return type === 'Identifier' ? pseudonymIdentifier : undefined;
    case 'drop':
      return undefined;
  }
}

export function merge(a: MNode, b: MNode): MNode {
  const m = mnode(a.type);
  m.all = a.all || b.all;
  m.named = a.named || b.named;
  m.transform = combine(a.transform, b.transform);
  m.sparse = a.sparse || b.sparse;
  m.where = both(a.where, b.where);
  for (const src of [a, b]) {
    for (const [k, v] of src.kids) {
      const prev = m.kids.get(k);
      m.kids.set(k, prev === undefined ? v : merge(prev, v));
    }
    if (src.byUrl !== undefined) {
      m.byUrl ??= new Map();
      for (const [k, v] of src.byUrl) {
        const prev = m.byUrl.get(k);
        m.byUrl.set(k, prev === undefined ? v : merge(prev, v));
      }
    }
  }
  return m;
}

export const FULL: Node = Object.freeze({
  all: true,
  kids: undefined,
  byUrl: undefined,
  leaf: undefined,
  drop: false,
  sparse: false,
  companions: undefined,
  where: undefined,
});
export const DROP: Node = Object.freeze({
  all: false,
  kids: undefined,
  byUrl: undefined,
  leaf: undefined,
  drop: true,
  sparse: false,
  companions: undefined,
  where: undefined,
});
export const EXTENSION_COMPANIONS: readonly string[] = Object.freeze(['url']);
export const RESOURCE_COMPANIONS: readonly string[] = Object.freeze(['resourceType']);

/** The runtime form of a value filter. */
export function itemFilter(where: MNode['where']): ItemFilter | undefined {
  return where === undefined ? undefined : Object.freeze([...where].map((e) => Object.freeze(e)));
}

/**
 * A profile's identifier rule at finalize time: `test` goes on every Identifier node, and `whole(type)` is the node
 * for an element of `type` allowed whole (identifiers.ts: FULL unless it can hold an Identifier).
 */
export interface IdentifierScope {
  readonly test: IdentifierTest;
  readonly whole: (type: string) => Node;
}

/** Turns the mutable tree into frozen runtime nodes; undefined when nothing at or below `m` is kept. */
export function finalize(m: MNode, inherited: boolean, ids?: IdentifierScope): Node | undefined {
  if (m.transform === 'drop') return DROP;
  const all = m.all || inherited;
  let leaf: Leaf | undefined;
  if (m.transform !== undefined) {
    leaf = leafFor(m.transform, m.type);
    if (leaf === undefined) return DROP;
  }
  let kids: Record<string, Node> | undefined;
  for (const [key, km] of m.kids) {
    const f = finalize(km, all, ids);
    if (f === undefined || (all && f === FULL)) continue;
    (kids ??= Object.create(null) as Record<string, Node>)[key] = f;
  }
  if (all && ids !== undefined) {
    // Children allowed whole through this node still have their Identifiers judged.
    for (const [name, d] of Object.entries(fhirElements().types[m.type] ?? {})) {
      for (const [key, t] of jsonKeys(name, d)) {
        if (m.kids.has(key)) continue;
        const w = ids.whole(t);
        if (w !== FULL) (kids ??= Object.create(null) as Record<string, Node>)[key] = w;
      }
    }
  }
  let byUrl: Record<string, Node> | undefined;
  if (m.byUrl !== undefined) {
    const general: MNode = { ...m, byUrl: undefined, kids: m.kids };
    for (const [url, um] of m.byUrl) {
      const f = finalize(merge(general, um), inherited, ids);
      if (f !== undefined) (byUrl ??= Object.create(null) as Record<string, Node>)[url] = f;
    }
  }
  const ident = ids !== undefined && m.type === 'Identifier' ? ids.test : undefined;
  if (!all && kids === undefined && byUrl === undefined) return undefined;
  if (all && kids === undefined && byUrl === undefined && leaf === undefined && m.where === undefined && !ident)
    return FULL;
  const companions =
    m.type === 'Extension' ? EXTENSION_COMPANIONS : m.type === 'Resource' ? RESOURCE_COMPANIONS : undefined;
  return Object.freeze({
    all,
    kids,
    byUrl,
    leaf,
    drop: false,
    sparse: m.sparse,
    companions,
    where: itemFilter(m.where),
    ident,
  });
}

/** Keeps nothing (a profile whose paths resolve to nothing). */
export const EMPTY: Node = Object.freeze({
  all: false,
  kids: undefined,
  byUrl: undefined,
  leaf: undefined,
  drop: false,
  sparse: false,
  companions: undefined,
  where: undefined,
});

/** The runtime node for a whole resource (DROP when a fail-safe withholds all of it). */
export function finalizeTree(tree: TypeTree, ids?: IdentifierScope): Node {
  return finalize(tree.root, false, ids) ?? EMPTY;
}
