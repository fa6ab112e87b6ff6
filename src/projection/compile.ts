// compileProfile: turns one minimum-necessary projection profile (HIPAA 45 CFR 164.502(b), 164.514(d); catalog
// ProfileDef) into a Projector, once at start. Resource-level rules live here (resourceType, id, meta, contained,
// modifiers, data-absent-reason marks); element-level rules (allow, transforms, value filters) are the node tree
// (tree.ts) walked by project.ts.
// Semantics and examples: docs/profiles.md.
import type { ItemFilterDef, ProfileDef, TransformName } from '../catalog/types.js';
import { BrokerError } from '../wire/errors.js';
import { finalizeDeidTree } from './deid.js';
import { stripLocalRefs } from './local-refs.js';
import { maskTable, markWithheld } from './masked.js';
import type { MaskTable } from './masked.js';
import { parsePath } from './path.js';
import { copyJson, modifiersIntact, projectValue } from './project.js';
import type { Json, Node } from './project.js';
import { EMPTY, allowPath, finalizeTree, newTypeTree, transformPath, wherePath } from './tree.js';
import type { IdentifierScope, TypeTree } from './tree.js';
import { identifierScope } from './identifiers.js';
import type { ProjectionContext, Projector } from './types.js';

export type { ProjectionContext, Projector } from './types.js';

/** What projecting one resource gave: the output, nothing left, or a withheld modifier (nothing may be sent). */
const WITHHELD_MODIFIER = Symbol('withheld-modifier');
type Outcome = Json | undefined | typeof WITHHELD_MODIFIER;
type ResourceProjector = (res: Json, ctx: ProjectionContext) => Outcome;

interface Options {
  /** Root: meta.profile becomes [url]. Contained: meta.profile removed, id always kept. */
  readonly profileUrl: string | undefined;
  readonly contained: Readonly<Record<string, ResourceProjector>> | undefined;
  readonly mask: MaskTable | undefined;
  /** `deidentified: true`: free text and unnamed extensions withheld at every depth (deid.ts). */
  readonly deidentified: boolean;
  /** The profile's `identifiers:` rule, compiled once and shared by the resource and its contained types. */
  readonly ids: IdentifierScope | undefined;
}

function projectMeta(meta: unknown, n: Node, ctx: ProjectionContext, profileUrl: string | undefined): Json | undefined {
  const out: Json = {};
  if (typeof meta === 'object' && meta !== null && !Array.isArray(meta)) {
    const m = meta as Json;
    const k = n.kids?.['meta'];
    const projected = k !== undefined ? projectValue(m, k, ctx) : n.all ? copyJson(m) : undefined;
    if (typeof projected === 'object' && projected !== null) {
      for (const [key, v] of Object.entries(projected))
        if (key !== 'profile' && key !== '_profile' && key !== 'security') out[key] = v;
    }
    // Policy labels always travel (FHIR R4 §2.5.0.1 security labels; the subscriber must honour them).
    const security = Array.isArray(m['security']) ? copyJson(m['security']) : undefined;
    if (security !== undefined) out['security'] = security;
  }
  if (profileUrl !== undefined) out['profile'] = [profileUrl];
  return Object.keys(out).length === 0 ? undefined : out;
}

function compileResource(tree: TypeTree, options: Options): ResourceProjector {
  const node = options.deidentified ? finalizeDeidTree(tree, options.ids) : finalizeTree(tree, options.ids);
  const { profileUrl, contained, mask } = options;
  const isContained = profileUrl === undefined;
  const containedAllowed = tree.containedAllowed && contained !== undefined;
  return (res, ctx) => {
    const out: Json = { resourceType: res['resourceType'] };
    const id = res['id'];
    const idNode = node.kids?.['id'];
    if (isContained) {
      if (typeof id === 'string') out['id'] = id;
    } else if (typeof id === 'string') {
      const r = node.drop
        ? undefined
        : idNode !== undefined
          ? projectValue(id, idNode, ctx)
          : node.all
            ? id
            : undefined;
      // Every delivered copy has an id its holder can keep it by and answer an access request with: where the
      // profile does not deliver the id, the subscriber's keyed pseudonym of it (docs/profiles.md, "Resource id").
      out['id'] = typeof r === 'string' ? r : ctx.pseudonymize(id);
    }
    // Withheld whole: meta keeps only security labels and the profile.
    const meta = projectMeta(res['meta'], node.drop ? EMPTY : node, ctx, profileUrl);
    if (meta !== undefined) out['meta'] = meta;
    let content = 0;
    let removed: Set<string> | undefined;
    for (const key of Object.keys(res)) {
      if (key === 'resourceType' || key === 'id' || key === 'meta' || key === '__proto__') continue;
      const v = res[key];
      if (key === 'contained') {
        const kept = containedAllowed ? projectContained(v, contained, ctx) : undefined;
        removed = removedIds(v, kept);
        if (kept !== undefined) out[key] = kept;
        continue;
      }
      const k = node.kids?.[key];
      const r = node.drop ? undefined : k !== undefined ? projectValue(v, k, ctx) : node.all ? copyJson(v) : undefined;
      if (!node.drop) {
        if (key === 'modifierExtension' && !modifiersIntact(v, r)) return WITHHELD_MODIFIER;
        // implicitRules is a modifier element (FHIR R4 §2.1.0.3.4): the rest cannot be read correctly without it.
        if (key === 'implicitRules' && r === undefined) return WITHHELD_MODIFIER;
      }
      if (r !== undefined) {
        out[key] = r;
        content++;
      }
    }
    if (removed !== undefined) stripLocalRefs(out, removed);
    if (mask !== undefined) markWithheld(res, out, mask);
    return isContained && content === 0 ? undefined : out;
  };
}

function projectContained(
  v: unknown,
  subs: Readonly<Record<string, ResourceProjector>> | undefined,
  ctx: ProjectionContext,
): unknown[] | undefined {
  if (!Array.isArray(v) || subs === undefined) return undefined;
  const out: unknown[] = [];
  for (const item of v) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) continue;
    const type = (item as Json)['resourceType'];
    const sub = typeof type === 'string' && Object.hasOwn(subs, type) ? subs[type] : undefined;
    if (sub === undefined) continue;
    const r = sub(item as Json, ctx);
    if (r !== undefined && r !== WITHHELD_MODIFIER) out.push(r);
  }
  return out.length === 0 ? undefined : out;
}

/** Ids of input contained resources that the output no longer holds. */
function removedIds(input: unknown, kept: unknown[] | undefined): Set<string> | undefined {
  if (!Array.isArray(input)) return undefined;
  const keptIds = new Set<unknown>();
  for (const k of kept ?? []) keptIds.add((k as Json)['id']);
  let removed: Set<string> | undefined;
  for (const item of input) {
    const id = typeof item === 'object' && item !== null ? (item as Json)['id'] : undefined;
    if (typeof id === 'string' && !keptIds.has(id)) (removed ??= new Set()).add(id);
  }
  return removed;
}

interface ByRoot {
  readonly transforms: [string, TransformName][];
  readonly where: [string, ItemFilterDef][];
}

function buildTree(resourceType: string, allow: readonly string[], rules: ByRoot | undefined): TypeTree {
  const tree = newTypeTree(resourceType);
  for (const p of allow) allowPath(tree, p);
  for (const [p, t] of rules?.transforms ?? []) transformPath(tree, p, t);
  for (const [p, f] of rules?.where ?? []) wherePath(tree, p, f);
  return tree;
}

/**
 * Compiles a profile once into a Projector (see types.ts). Paths that do not resolve allow nothing; a transform
 * that cannot be read or applied withholds what it names (docs/profiles.md, "Fail safe").
 */
export function compileProfile(profile: ProfileDef): Projector {
  const rootType = profile.resourceType;
  // Transforms and value filters, by the type their path starts with (the profile's type or a contained type).
  const byType = new Map<string, ByRoot>();
  let unreadable = false;
  const rulesOf = (path: string): ByRoot | undefined => {
    const first = parsePath(path)?.[0];
    if (first === undefined) {
      unreadable = true;
      return undefined;
    }
    let r = byType.get(first.name);
    if (r === undefined) {
      r = { transforms: [], where: [] };
      byType.set(first.name, r);
    }
    return r;
  };
  for (const [path, t] of Object.entries(profile.transforms)) rulesOf(path)?.transforms.push([path, t]);
  for (const [path, f] of Object.entries(profile.where)) rulesOf(path)?.where.push([path, f]);
  const ids = profile.identifiers === undefined ? undefined : identifierScope(profile.identifiers);
  const tree = buildTree(rootType, profile.allow, byType.get(rootType));
  if (unreadable) tree.root.transform = 'drop';
  let contained: Record<string, ResourceProjector> | undefined;
  if (tree.containedAllowed) {
    contained = Object.create(null) as Record<string, ResourceProjector>;
    for (const [type, allow] of Object.entries(profile.contained)) {
      const sub = buildTree(type, allow, byType.get(type));
      sub.containedAllowed = false;
      contained[type] = compileResource(sub, {
        profileUrl: undefined,
        contained: undefined,
        mask: undefined,
        deidentified: profile.deidentified,
        ids,
      });
    }
  }
  const project = compileResource(tree, {
    profileUrl: profile.url,
    contained,
    mask: profile.markMasked ? maskTable(rootType) : undefined,
    deidentified: profile.deidentified,
    ids,
  });
  const path = `${rootType}.modifierExtension`;
  return (resource, ctx) => {
    if (resource['resourceType'] !== rootType) {
      throw new TypeError(`projector for ${rootType} called with another resource type`);
    }
    const out = project(resource, ctx);
    if (out === WITHHELD_MODIFIER) {
      throw new BrokerError(
        'E_MODIFIER_WITHHELD',
        `${rootType} carries a modifier element (${path} or implicitRules) that profile ${profile.id} withholds`,
        { path },
      );
    }
    return out ?? { resourceType: rootType };
  };
}
