// A profile's identifier rule (`identifiers:`, docs/profiles.md) compiled once: a predicate over one input
// Identifier (FHIR R4 datatypes.html#Identifier), matched by type (HL7 v2 table 0203 codes among
// `type.coding` with system http://terminology.hl7.org/CodeSystem/v2-0203) and/or `system`; and the per-type nodes
// that carry it to every Identifier an allowed-whole subtree can hold (Reference.identifier, valueIdentifier …).
import { V2_0203_SYSTEM } from '../catalog/identifier-rule.js';
import type { IdentifierMatcherDef, IdentifierRuleDef } from '../catalog/types.js';
import { fhirElements, isPrimitiveType, isResourceType } from '../fhir/elements.js';
import type { IdentifierTest, Json, Node } from './project.js';
import type { IdentifierScope } from './tree.js';
import { DROP, EXTENSION_COMPANIONS, FULL, RESOURCE_COMPANIONS, jsonKeys } from './tree.js';

type Matcher = (id: Json, types: ReadonlySet<string>) => boolean;

function matcher(m: IdentifierMatcherDef): Matcher {
  const { type, system } = m;
  return (id, types) => (type === undefined || types.has(type)) && (system === undefined || id['system'] === system);
}

/** The v2-0203 codes of one Identifier's type (other code systems and malformed codings are ignored). */
function typeCodes(id: Json): ReadonlySet<string> {
  const t = id['type'];
  const codings = typeof t === 'object' && t !== null ? (t as Json)['coding'] : undefined;
  const codes = new Set<string>();
  if (!Array.isArray(codings)) return codes;
  for (const c of codings) {
    if (typeof c !== 'object' || c === null) continue;
    const { system, code } = c as Json;
    if (system === V2_0203_SYSTEM && typeof code === 'string') codes.add(code);
  }
  return codes;
}

/** Kept iff some keep matcher holds and no drop matcher does; anything that is not an object is not kept. */
export function compileIdentifierRule(rule: IdentifierRuleDef): IdentifierTest {
  const keep = rule.keep.map(matcher);
  const drop = rule.drop.map(matcher);
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    const id = v as Json;
    const types = typeCodes(id);
    return keep.some((m) => m(id, types)) && !drop.some((m) => m(id, types));
  };
}

let reaching: ReadonlySet<string> | undefined;

/** True when an element of `type` can hold an Identifier at some depth (a fixpoint over the static R4 index). */
export function reachesIdentifier(type: string): boolean {
  if (reaching === undefined) {
    const types = fhirElements().types;
    const set = new Set<string>(['Identifier']);
    for (let changed = true; changed;) {
      changed = false;
      for (const [t, defs] of Object.entries(types)) {
        if (set.has(t)) continue;
        const hit = Object.entries(defs).some(([name, d]) => jsonKeys(name, d).some(([, k]) => set.has(k)));
        if (hit) {
          set.add(t);
          changed = true;
        }
      }
    }
    reaching = set;
  }
  return reaching.has(type);
}

/** Type → node, for one compiled rule (recursive types share one node; the walk follows the finite input). */
type TypedCache = Map<string, Node>;

/**
 * The node for an element of `type` allowed whole, under an identifier rule: everything passes, except that every
 * Identifier inside is judged by `test`. FULL when the type cannot hold an Identifier.
 */
function allowedWhole(type: string, test: IdentifierTest, cache: TypedCache): Node {
  if (isPrimitiveType(type) || !reachesIdentifier(type)) return FULL;
  const hit = cache.get(type);
  if (hit !== undefined) return hit;
  if (type === 'Resource') {
    // A whole resource in an element (Bundle.entry.resource): judged by its own type; an unknown type is withheld.
    const byType: Node = Object.freeze({
      ...FULL,
      byResourceType: (rt: string) => (isResourceType(rt) ? allowedWhole(rt, test, cache) : DROP),
    });
    cache.set(type, byType);
    return byType;
  }
  const kids = Object.create(null) as Record<string, Node>;
  const node: Node = Object.freeze({
    all: true,
    kids,
    byUrl: undefined,
    leaf: undefined,
    drop: false,
    sparse: false,
    companions: type === 'Extension' ? EXTENSION_COMPANIONS : type === 'Resource' ? RESOURCE_COMPANIONS : undefined,
    where: undefined,
    ident: type === 'Identifier' ? test : undefined,
  });
  cache.set(type, node);
  for (const [name, d] of Object.entries(fhirElements().types[type] ?? {})) {
    for (const [key, t] of jsonKeys(name, d)) {
      const k = allowedWhole(t, test, cache);
      if (k !== FULL) kids[key] = k;
    }
  }
  Object.freeze(kids);
  return node;
}

/** The finalize-time scope of one profile's rule: compiled once, its per-type nodes built on demand and cached. */
export function identifierScope(rule: IdentifierRuleDef): IdentifierScope {
  const test = compileIdentifierRule(rule);
  const cache: TypedCache = new Map();
  return { test, whole: (type) => allowedWhole(type, test, cache) };
}
