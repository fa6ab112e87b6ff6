// The compiled form of a de-identified profile (`deidentified: true`; HIPAA Safe Harbor, 45 CFR 164.514(b)(2)). Free
// text can carry any of the eighteen identifiers, so inside an allowed subtree a de-identified view passes only what
// the FHIR R4 element index (src/fhir/elements.ts) says is structured, at every depth:
// - no `extension` / `modifierExtension` and no `_x` primitive-extension sibling unless an allow path names the
//   extension by URL (`…extension(<url>)`); a withheld modifierExtension withholds its element (FHIR R4 §2.18.0.5);
// - no element of a free-content type (FREE_CONTENT_TYPES: string, markdown, xhtml, base64Binary) unless a path names
//   that element exactly (an allow path ending at it, not through `[x]`, or a transform on it);
// - never a Narrative (`text`).
// Elements allowed whole are expanded into explicit per-type nodes here, once per type and cached, so the
// per-message walk (project.ts) is the same property lookup as for any profile. Semantics: docs/profiles.md.
import { FREE_CONTENT_TYPES } from '../catalog/deidentification.js';
import { fhirElements, isPrimitiveType } from '../fhir/elements.js';
import type { Leaf, Node } from './project.js';
import {
  DROP,
  EMPTY,
  EXTENSION_COMPANIONS,
  FULL,
  RESOURCE_COMPANIONS,
  itemFilter,
  jsonKeys,
  leafFor,
  merge,
} from './tree.js';
import type { IdentifierScope, MNode, TypeTree } from './tree.js';

const NARRATIVE = 'Narrative';
const EXTENSION_KEYS: ReadonlySet<string> = new Set(['extension', 'modifierExtension']);

function companionsOf(type: string): readonly string[] | undefined {
  return type === 'Extension' ? EXTENSION_COMPANIONS : type === 'Resource' ? RESOURCE_COMPANIONS : undefined;
}

const NAMED_PRIMITIVE: Node = FULL;

/** Type → the node for an element of that type allowed by an ancestor only (null: nothing of it passes). */
const inheritedPlain = new Map<string, Node | null>();
/** The same, per identifier rule (its Identifier nodes carry the rule's test). */
const inheritedScoped = new WeakMap<IdentifierScope, Map<string, Node | null>>();

function cacheFor(ids: IdentifierScope | undefined): Map<string, Node | null> {
  if (ids === undefined) return inheritedPlain;
  let c = inheritedScoped.get(ids);
  if (c === undefined) {
    c = new Map();
    inheritedScoped.set(ids, c);
  }
  return c;
}

/**
 * The node for an element of `type` that an ancestor allows: structured children only, recursively. Cached per type
 * (the index is static); recursive types (Reference → Identifier → Reference) share one node, which is safe because
 * the walk follows the finite input.
 */
function inheritedNode(type: string, ids: IdentifierScope | undefined): Node | undefined {
  const inherited = cacheFor(ids);
  const hit = inherited.get(type);
  if (hit !== undefined) return hit ?? undefined;
  if (isPrimitiveType(type)) {
    const n = FREE_CONTENT_TYPES.has(type) ? null : FULL;
    inherited.set(type, n);
    return n ?? undefined;
  }
  const defs = type === NARRATIVE ? undefined : fhirElements().types[type];
  if (defs === undefined) {
    inherited.set(type, null);
    return undefined;
  }
  const kids = Object.create(null) as Record<string, Node>;
  const node: Node = Object.freeze({
    all: false,
    kids,
    byUrl: undefined,
    leaf: undefined,
    drop: false,
    sparse: false,
    companions: companionsOf(type),
    where: undefined,
    ident: type === 'Identifier' ? ids?.test : undefined,
  });
  inherited.set(type, node);
  let n = 0;
  for (const [name, d] of Object.entries(defs)) {
    if (EXTENSION_KEYS.has(name)) continue;
    for (const [key, t] of jsonKeys(name, d)) {
      const k = inheritedNode(t, ids);
      if (k === undefined) continue;
      kids[key] = k;
      n++;
    }
  }
  Object.freeze(kids);
  if (n === 0) inherited.set(type, null);
  return n === 0 ? undefined : node;
}

/** The child a transform consumes and therefore names: the `reference` of a pseudonymised Reference, the `value` of an Identifier. */
function consumedBy(m: MNode): string | undefined {
  if (m.transform !== 'pseudonym') return undefined;
  return m.type === 'Reference' ? 'reference' : m.type === 'Identifier' ? 'value' : undefined;
}

/** An `extension` / `modifierExtension` element: only the URLs a path names; every other item is withheld. */
function extensionElement(m: MNode, ids: IdentifierScope | undefined): Node | undefined {
  if (m.transform !== undefined && (m.transform === 'drop' || leafFor(m.transform, m.type) === undefined)) return DROP;
  if (m.byUrl === undefined) return undefined;
  // The element's own rules (a drop below it) apply to every URL; allowing it without a URL allows none of them.
  const general: MNode = { ...m, all: false, named: false, byUrl: undefined };
  let byUrl: Record<string, Node> | undefined;
  for (const [url, um] of m.byUrl) {
    const f = node(merge(general, um), false, false, true, ids);
    if (f !== undefined) (byUrl ??= Object.create(null) as Record<string, Node>)[url] = f;
  }
  if (byUrl === undefined) return undefined;
  return Object.freeze({
    all: false,
    kids: undefined,
    byUrl: Object.freeze(byUrl),
    leaf: undefined,
    drop: false,
    sparse: m.sparse,
    companions: undefined,
    where: itemFilter(m.where),
  });
}

/**
 * One node of a de-identified tree. `named`: the parent's rule names this element (the value of an extension allowed
 * by URL, the part a transform consumes). `byUrl`: `m` is an extension reached through its URL.
 */
function node(
  m: MNode,
  inheritedAll: boolean,
  named: boolean,
  byUrl: boolean,
  ids: IdentifierScope | undefined,
): Node | undefined {
  if (m.transform === 'drop' || m.type === NARRATIVE) return DROP;
  const all = m.all || inheritedAll;
  let leaf: Leaf | undefined;
  if (m.transform !== undefined) {
    leaf = leafFor(m.transform, m.type);
    if (leaf === undefined) return DROP;
  }
  if (isPrimitiveType(m.type)) {
    if (!all || (FREE_CONTENT_TYPES.has(m.type) && !named && !m.named)) return undefined;
    if (leaf === undefined && m.where === undefined && !m.sparse) return NAMED_PRIMITIVE;
    return Object.freeze({
      all: true,
      kids: undefined,
      byUrl: undefined,
      leaf,
      drop: false,
      sparse: m.sparse,
      companions: undefined,
      where: itemFilter(m.where),
    });
  }
  const consumed = consumedBy(m);
  // The value of an extension allowed by its URL is what the URL defines: it is named.
  const valueNamed = byUrl && m.all;
  if (
    all &&
    m.kids.size === 0 &&
    leaf === undefined &&
    m.where === undefined &&
    !m.sparse &&
    consumed === undefined &&
    !valueNamed
  ) {
    // Allowed whole with no rule below it: the shared per-type node.
    return inheritedNode(m.type, ids);
  }
  let kids: Record<string, Node> | undefined;
  const put = (key: string, n: Node | undefined): void => {
    if (n !== undefined) (kids ??= Object.create(null) as Record<string, Node>)[key] = n;
  };
  for (const [key, km] of m.kids) {
    const kidNamed = key === consumed || (valueNamed && key.startsWith('value'));
    put(key, EXTENSION_KEYS.has(key) ? extensionElement(km, ids) : node(km, all, kidNamed, false, ids));
  }
  if (all) {
    for (const [name, d] of Object.entries(fhirElements().types[m.type] ?? {})) {
      if (EXTENSION_KEYS.has(name)) continue;
      for (const [key, t] of jsonKeys(name, d)) {
        if (m.kids.has(key)) continue;
        const kidNamed = key === consumed || (valueNamed && name === 'value');
        put(key, kidNamed && isPrimitiveType(t) ? NAMED_PRIMITIVE : inheritedNode(t, ids));
      }
    }
  }
  if (kids === undefined) return undefined;
  return Object.freeze({
    all: false,
    kids: Object.freeze(kids),
    byUrl: undefined,
    leaf,
    drop: false,
    sparse: m.sparse,
    companions: companionsOf(m.type),
    where: itemFilter(m.where),
    ident: m.type === 'Identifier' ? ids?.test : undefined,
  });
}

/** The runtime node for a whole resource under a de-identified profile (DROP when a fail-safe withholds all of it). */
export function finalizeDeidTree(tree: TypeTree, ids?: IdentifierScope): Node {
  return node(tree.root, false, false, false, ids) ?? EMPTY;
}
