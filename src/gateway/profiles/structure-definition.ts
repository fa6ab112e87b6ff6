// Each minimum-necessary projection profile as a FHIR R4 StructureDefinition (profiling.html): a constraint on the
// R4 base resource whose differential puts every element the projection never delivers at max 0 and documents the
// value rules (transforms, item filters, the identifier rule, data-absent-reason marks). Built from the same rule
// tree the projector is compiled from (src/projection/tree.ts), so the published contract and the delivered bytes
// cannot drift apart. Layout and semantics: docs/partner-gateway.md "Profiles".
import type { ElementDefinition, StructureDefinition } from 'fhir/r4.js';
import type { Catalog, IdentifierMatcherDef, ProfileDef } from '../../catalog/types.js';
import { fhirElements, isPrimitiveType } from '../../fhir/elements.js';
import { DATA_ABSENT_REASON_URL, maskTable } from '../../projection/masked.js';
import { parsePath } from '../../projection/path.js';
import { allowPath, jsonKeys, newTypeTree, transformPath, wherePath } from '../../projection/tree.js';
import type { MNode, TypeTree } from '../../projection/tree.js';

const R4_BASE = 'http://hl7.org/fhir/StructureDefinition/';
/** The FHIRPath invariant on an element a masking profile withholds: only the data-absent-reason mark may appear. */
export const MASKED_INVARIANT = 'phib-masked-1';
/** Comment prefix of an element whose items are filtered by value (where, identifiers): the path alone is not max 0. */
export const VALUE_RULE = 'Value rule:';

/** The profiles partners receive (topic subscriptions of services with a `partner:` block), by profile id. */
export function partnerProfiles(catalog: Catalog): ProfileDef[] {
  const ids = new Set<string>();
  for (const topic of catalog.topics.values())
    for (const sub of topic.subscribers)
      if (catalog.services.get(sub.service)?.partner !== undefined) ids.add(sub.profile);
  return [...ids]
    .sort()
    .map((id) => catalog.profiles.get(id))
    .filter((p): p is ProfileDef => p !== undefined);
}

/** `coverage-payer` → `CoveragePayer` (StructureDefinition.name is a computer-friendly token). */
function tokenName(id: string): string {
  const name = id
    .split(/[^A-Za-z0-9]+/)
    .filter((s) => s !== '')
    .map((s) => s.charAt(0).toUpperCase() + s.slice(1))
    .join('');
  return /^[A-Z]/.test(name) ? name : `P${name}`;
}

const TRANSFORM_TEXT: Readonly<Record<string, string>> = {
  year: 'Transformed: only the year (YYYY) is delivered.',
  zip3: 'Transformed: only the first three ZIP digits are delivered (000 for the HHS restricted three-digit areas).',
  pseudonym:
    "Transformed: replaced by a keyed pseudonym (HMAC-SHA-256), stable for this recipient; never the publisher's value.",
};

function describeMatcher(m: IdentifierMatcherDef): string {
  return [m.type === undefined ? '' : `type ${m.type}`, m.system === undefined ? '' : `system ${m.system}`]
    .filter((s) => s !== '')
    .join(' and ');
}

function identifierRuleText(profile: ProfileDef): string | undefined {
  const rule = profile.identifiers;
  if (rule === undefined) return undefined;
  const keep = rule.keep.map(describeMatcher).join('; ');
  const drop = rule.drop.map(describeMatcher).join('; ');
  return `${VALUE_RULE} an Identifier (at any depth) is delivered only when it matches one of [${keep}]${drop === '' ? '' : ` and none of [${drop}]`} (type = a v2-0203 code in Identifier.type.coding).`;
}

/** The rule trees the projector compiles (compile.ts buildTree), for the profile's resource type. */
function ruleTree(profile: ProfileDef): TypeTree {
  const tree = newTypeTree(profile.resourceType);
  const root = profile.resourceType;
  const startsHere = (path: string): boolean => parsePath(path)?.[0]?.name === root;
  for (const p of profile.allow) allowPath(tree, p);
  for (const [p, t] of Object.entries(profile.transforms)) if (startsHere(p)) transformPath(tree, p, t);
  for (const [p, f] of Object.entries(profile.where)) if (startsHere(p)) wherePath(tree, p, f);
  return tree;
}

interface Ctx {
  readonly out: ElementDefinition[];
  readonly identifierText: string | undefined;
}

/** Notes on one delivered element: its transform, value filter, identifier rule. */
function notes(node: MNode, type: string, ctx: Ctx): string[] {
  const n: string[] = [];
  if (node.transform !== undefined && node.transform !== 'drop') n.push(TRANSFORM_TEXT[node.transform] ?? '');
  if (node.where !== undefined) {
    const conds = [...node.where].map(([d, v]) => `${d} is one of ${[...v].sort().join(', ')}`).join(' and ');
    n.push(`${VALUE_RULE} only items whose ${conds} are delivered.`);
  }
  if (type === 'Identifier' && ctx.identifierText !== undefined) n.push(ctx.identifierText);
  return n.filter((s) => s !== '');
}

/** Whether a node delivers anything: allowed (whole or in part) and not dropped by a transform. */
function delivers(node: MNode | undefined): node is MNode {
  if (node === undefined || node.transform === 'drop') return false;
  if (node.all) return true;
  if (node.byUrl !== undefined && [...node.byUrl.values()].some(delivers)) return true;
  return [...node.kids.values()].some(delivers);
}

function sliceName(url: string): string {
  const last =
    url
      .replace(/[/#]+$/, '')
      .split(/[/#]/)
      .pop() ?? 'ext';
  const token = last.replace(/[^A-Za-z0-9_-]/g, '-');
  return token === '' ? 'ext' : token;
}

/**
 * The differential for the children of `node` (an element of type `typeKey` at `path`, allowed in part):
 * withheld children at max 0, delivered ones with their notes, partly allowed ones recursively.
 */
function walk(node: MNode, typeKey: string, path: string, ctx: Ctx, top?: { mask: Set<string> | undefined }): void {
  const defs = fhirElements().types[typeKey];
  if (defs === undefined) return;
  for (const [name, def] of Object.entries(defs)) {
    const keys = jsonKeys(name, def);
    const id = `${path}.${name}${def.x === 1 ? '[x]' : ''}`;
    if (top !== undefined && (name === 'id' || name === 'meta' || name === 'contained')) continue; // resourceLevel()
    const delivered = keys.filter(([k]) => delivers(node.kids.get(k)));
    if (name === 'extension' || name === 'modifierExtension') {
      const kid = node.kids.get(name);
      if (kid !== undefined && kid.all && kid.transform !== 'drop') {
        const n = notes(kid, 'Extension', ctx);
        if (n.length > 0) ctx.out.push({ id, path: id, comment: n.join(' ') });
        continue;
      }
      const urls = [...(kid?.byUrl ?? new Map<string, MNode>())].filter(([, u]) => delivers(u));
      if (urls.length === 0) {
        ctx.out.push({
          id,
          path: id,
          max: '0',
          ...(name === 'modifierExtension'
            ? { comment: 'A resource carrying a modifier extension is not delivered at all (FHIR R4 §2.1.0.3.4).' }
            : {}),
        });
        continue;
      }
      // Closed slicing by url (profiling.html#slicing): only the extensions named in the profile are delivered.
      ctx.out.push({
        id,
        path: id,
        slicing: { discriminator: [{ type: 'value', path: 'url' }], rules: 'closed' },
        comment: 'Only the extensions sliced here are delivered.',
      });
      for (const [url] of urls.sort(([a], [b]) => (a < b ? -1 : 1))) {
        const s = sliceName(url);
        ctx.out.push({ id: `${id}:${s}`, path: id, sliceName: s, type: [{ code: 'Extension', profile: [url] }] });
      }
      continue;
    }
    if (delivered.length === 0) {
      const masked = keys.some(([k]) => top?.mask?.has(k) === true);
      ctx.out.push(
        masked
          ? {
              id,
              path: id,
              comment:
                'Withheld: when the source has it, it is delivered only as a data-absent-reason `masked` marker, never its value.',
              constraint: [
                {
                  key: MASKED_INVARIANT,
                  severity: 'error',
                  human: 'Only the data-absent-reason extension with code masked; no value',
                  expression: `hasValue().not() and children().all(url = '${DATA_ABSENT_REASON_URL}' and value = 'masked')`,
                },
              ],
            }
          : name === 'implicitRules'
            ? { id, path: id, max: '0', comment: 'A resource carrying implicitRules is not delivered at all.' }
            : { id, path: id, max: '0' },
      );
      continue;
    }
    const el: ElementDefinition = { id, path: id };
    if (def.x === 1 && delivered.length < keys.length) el.type = delivered.map(([, t]) => ({ code: t }));
    const n = delivered.flatMap(([k, t]) => notes(node.kids.get(k) as MNode, t, ctx));
    if (n.length > 0) el.comment = [...new Set(n)].join(' ');
    // Descend into one concrete type (a choice restricted to one type too); several types are left as allowed.
    const sub: ElementDefinition[] = [];
    const [key, type] = delivered[0] as [string, string];
    const kid = node.kids.get(key) as MNode;
    if (delivered.length === 1 && !isPrimitiveType(type) && type !== 'Resource') {
      // A wholly allowed subtree needs entries only for descendants with their own rules.
      if (kid.all) describeRules(kid, type, id, { ...ctx, out: sub });
      else walk(kid, type, id, { ...ctx, out: sub });
    }
    if (el.type !== undefined || el.comment !== undefined || sub.length > 0) ctx.out.push(el, ...sub);
  }
}

/** Inside a wholly allowed subtree: entries only for elements with transforms, filters or the identifier rule. */
function describeRules(node: MNode, typeKey: string, path: string, ctx: Ctx, depth = 0): void {
  const defs = fhirElements().types[typeKey];
  if (defs === undefined || depth > 8) return;
  for (const [name, def] of Object.entries(defs)) {
    const id = `${path}.${name}${def.x === 1 ? '[x]' : ''}`;
    for (const [k, t] of jsonKeys(name, def)) {
      const kid = node.kids.get(k);
      const inherited = ctx.identifierText !== undefined && t === 'Identifier';
      if (kid === undefined && !inherited) continue;
      if (kid?.transform === 'drop') {
        ctx.out.push({ id, path: id, max: '0' });
        continue;
      }
      const n = kid === undefined ? notes(NO_RULES, t, ctx) : notes(kid, t, ctx);
      if (n.length > 0) ctx.out.push({ id, path: id, comment: n.join(' ') });
      if (kid !== undefined && !isPrimitiveType(t) && t !== 'Resource') describeRules(kid, t, id, ctx, depth + 1);
    }
  }
}

const NO_RULES: MNode = {
  type: 'Element',
  all: true,
  named: false,
  transform: undefined,
  sparse: false,
  kids: new Map(),
  byUrl: undefined,
  where: undefined,
};

/** id, meta and contained: rules the projector applies to every resource whatever the allow list says. */
function resourceLevel(profile: ProfileDef, tree: TypeTree, ctx: Ctx): ElementDefinition[] {
  const t = profile.resourceType;
  const root = tree.root;
  const idKid = root.kids.get('id');
  const out: ElementDefinition[] = [];
  // Every copy carries an id (src/projection/compile.ts): the publisher's where the profile delivers it, else this
  // subscriber's keyed pseudonym of it.
  if (!root.all && !delivers(idKid))
    out.push({
      id: `${t}.id`,
      path: `${t}.id`,
      comment:
        "Always present: this recipient's keyed pseudonym of the publisher's id (HMAC-SHA-256, stable per recipient), never the id itself.",
    });
  out.push({
    id: `${t}.meta`,
    path: `${t}.meta`,
    comment:
      'meta.profile is set to this profile; meta.security (policy labels) always travels; other meta elements only as allowed.',
  });
  const meta = root.kids.get('meta');
  if (!root.all && !(meta?.all === true)) {
    for (const name of Object.keys(fhirElements().types['Meta'] ?? {})) {
      if (name === 'profile' || name === 'security') continue;
      if (!delivers(meta?.kids.get(name))) out.push({ id: `${t}.meta.${name}`, path: `${t}.meta.${name}`, max: '0' });
    }
  }
  const containedTypes = Object.keys(profile.contained).sort();
  if (tree.containedAllowed && containedTypes.length > 0)
    out.push({
      id: `${t}.contained`,
      path: `${t}.contained`,
      comment: `Only contained resources of type ${containedTypes.join(', ')}, each projected by the profile's contained rules; others are removed with the local references to them.`,
    });
  else out.push({ id: `${t}.contained`, path: `${t}.contained`, max: '0' });
  void ctx;
  return out;
}

/** The StructureDefinition for one profile (FHIR R4 structuredefinition.html, derivation `constraint`). */
export function profileStructureDefinition(profile: ProfileDef, date?: string): StructureDefinition {
  const tree = ruleTree(profile);
  const t = profile.resourceType;
  const ctx: Ctx = { out: [], identifierText: identifierRuleText(profile) };
  const rootComment = [
    `Minimum-necessary projection (45 CFR 164.502(b)) phi-broker delivers with profile ${profile.id}: elements at max 0 are never delivered.`,
    profile.markMasked
      ? 'Withheld top-level elements the source had are marked with the data-absent-reason extension, code masked.'
      : '',
    profile.deidentified
      ? 'De-identified (45 CFR 164.514(b)(2)): inside allowed elements, free text (string, markdown, xhtml, base64Binary) not named by the profile, Narrative and extensions not named by URL are withheld at every depth.'
      : '',
    ctx.identifierText ?? '',
    'A resource carrying implicitRules or a modifierExtension this profile withholds is not delivered at all.',
  ]
    .filter((s) => s !== '')
    .join(' ');
  const rootEl: ElementDefinition = { id: t, path: t, definition: profile.description, comment: rootComment };
  const level = resourceLevel(profile, tree, ctx);
  if (!tree.root.all)
    walk(tree.root, t, t, ctx, {
      // implicitRules is never marked: a resource whose implicitRules the profile withholds is not delivered.
      mask: profile.markMasked ? new Set(Object.keys(maskTable(t)).filter((k) => k !== 'implicitRules')) : undefined,
    });
  else describeRules(tree.root, t, t, ctx);
  // Base element order: id, meta come first in every resource, contained after text.
  const byId = new Map(level.map((e) => [e.id, e]));
  const ordered: ElementDefinition[] = [rootEl];
  for (const name of Object.keys(fhirElements().types[t] ?? {})) {
    const lead = byId.get(`${t}.${name}`);
    if (lead !== undefined) {
      ordered.push(lead);
      ordered.push(...level.filter((e) => e.id?.startsWith(`${t}.${name}.`) === true));
    }
    ordered.push(...ctx.out.filter((e) => elementOf(e.id, t) === name));
  }
  return {
    resourceType: 'StructureDefinition',
    id: profile.id,
    url: profile.url,
    name: tokenName(profile.id),
    title: `${t} as phi-broker delivers it under profile ${profile.id}`,
    status: 'active',
    ...(date === undefined ? {} : { date }),
    publisher: 'phi-broker',
    description: profile.description,
    fhirVersion: '4.0.1',
    kind: 'resource',
    abstract: false,
    type: t,
    baseDefinition: `${R4_BASE}${t}`,
    derivation: 'constraint',
    differential: { element: ordered },
  };
}

/** The top-level element name of an element id (`Patient.name.family` → `name`, `Patient.deceased[x]` → `deceased`). */
function elementOf(id: string | undefined, type: string): string | undefined {
  if (id === undefined || !id.startsWith(`${type}.`)) return undefined;
  return id
    .slice(type.length + 1)
    .split(/[.:]/)[0]
    ?.replace(/\[x\]$/, '');
}
