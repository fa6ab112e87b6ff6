// AuditEvent JSON without building and serialising every event: the facts of each accepted message (one
// `accepted`, one `delivered` per subscriber) differ from the previous message's only in a few
// strings — event id, time, message and delivery ids, pseudonyms (computed before, carried by the fact), ingest
// sequence, key ids. For those kinds the
// text is composed from a template: the builder's own output (event.ts, buildAuditEventAs) for the fact with
// placeholders where those strings go, serialised once and cut at the placeholders. So event.ts stays the one
// description of each event's shape; this file only says which fact fields vary per event (holes) and which
// select the template (its path in the cache). The text is byte-identical to JSON.stringify(buildAuditEvent(fact)):
// each new template is checked against the builder on the fact that made it, and a template that does not
// reproduce it is never used (test/audit/event-json.test.ts compares every kind).
//
// The rule that keeps a template right for every fact on its path: a hole is a value the builder only places
// (or concatenates) into the event — it never branches on it or transforms it; a value it branches on is part
// of the path. Placeholders are Unicode private-use characters, which JSON.stringify (ECMA-262 §25.5.2.2,
// RFC 8259 §7) writes as they are.
import type { AuditEvent } from 'fhir/r4.js';
import { buildAuditEventAs, type EventContext } from './event.js';
import type { AuditActor, AuditFact, AuditSubject } from './facts.js';

/** Placeholder characters: U+F000 + n for the n-th hole of a fact. */
const HOLE = 0xf000;
const MAX_HOLES = 0x100;
const PLACEHOLDER = /[\uf000-\uf0ff]/g;

/** Text cut at its placeholders: texts[0] slot[0] texts[1] … slot[n-1] texts[n]. */
interface Template {
  readonly texts: readonly string[];
  readonly slots: readonly number[];
}

/**
 * The template cache: a trie with one level per value that selects a template, in the order a fact is walked,
 * so a lookup hashes the fact's own (catalog) strings — no key string is built per event. Holes step through a
 * symbol of their own: an optional hole's presence is part of the path and never equals a value.
 */
interface Node {
  readonly next: Map<unknown, Node>;
  template?: Template | null;
}

/** Nodes kept per writer; paths come from the catalog (services, profiles, purposes, types), so this is a guard, not a budget. */
const MAX_NODES = 16 * 1024;

/** Turns facts into AuditEvent JSON, from templates where it can; one per EventContext (the trail's). */
export class AuditEventJson {
  /** Events written from a template, and by the builder (new templates, kinds and shapes not templated). */
  filled = 0;
  built = 0;
  private readonly cache = { root: newNode(), nodes: 0 };

  constructor(private readonly ctx: EventContext) {}

  /** JSON.stringify(buildAuditEvent(fact, ctx)), byte for byte. */
  json(fact: AuditFact): string {
    const { ctx } = this;
    const id = ctx.newId();
    const recorded = new Date(ctx.now()).toISOString();
    if (this.cache.nodes >= MAX_NODES) {
      this.cache.root = newNode();
      this.cache.nodes = 0;
    }
    const holes = new Holes(id, recorded, this.cache);
    const skeleton = skeletonOf(fact, holes);
    if (skeleton === undefined) {
      this.built += 1;
      return JSON.stringify(buildAuditEventAs(fact, ctx, id, recorded));
    }
    const leaf = holes.node;
    let template = leaf.template;
    if (template === undefined) {
      // A new template: made from the skeleton, kept only if it reproduces the builder's text for this fact.
      const expected = JSON.stringify(buildAuditEventAs(fact, ctx, id, recorded));
      template = templateOf(skeleton, holes.values.length, ctx);
      if (template !== null && fill(template, holes.values) !== expected) template = null;
      leaf.template = template;
      this.built += 1;
      return expected;
    }
    if (template === null) {
      this.built += 1;
      return JSON.stringify(buildAuditEventAs(fact, ctx, id, recorded));
    }
    this.filled += 1;
    return fill(template, holes.values);
  }
}

function newNode(): Node {
  return { next: new Map() };
}

/** Placeholder characters, made once. */
const HOLES = Array.from({ length: MAX_HOLES }, (_, i) => String.fromCharCode(HOLE + i));

/**
 * Collects, while a fact is walked, the values that vary per event (holes: a placeholder goes into the
 * skeleton fact, the value into `values`) and the path to its template (everything else the builder reads).
 */
class Holes {
  node: Node;
  readonly values: string[];

  constructor(
    id: string,
    recorded: string,
    private readonly cache: { root: Node; nodes: number },
  ) {
    this.values = [id, recorded];
    this.node = cache.root;
  }

  /** A value the builder only places into the event. */
  hole(step: symbol, value: string): string {
    this.step(step);
    return HOLES[this.values.push(value) - 1] ?? '';
  }

  /** A value that selects the template. */
  fixed<T extends string | boolean | undefined>(value: T): T {
    this.step(value);
    return value;
  }

  /**
   * A list that selects the template (a catalog profile's element list), by content; remembered by identity,
   * as the builder's own per-profile cache does (the catalog's lists are never changed once loaded).
   */
  list<T extends readonly string[]>(value: T): T {
    let n = LISTS.byIdentity.get(value);
    if (n === undefined) {
      const content = JSON.stringify(value);
      n = LISTS.byContent.get(content) ?? LISTS.next++;
      if (LISTS.byContent.size >= MAX_NODES) LISTS.byContent.clear();
      LISTS.byContent.set(content, n);
      LISTS.byIdentity.set(value, n);
    }
    this.step(n);
    return value;
  }

  private step(key: unknown): void {
    let next = this.node.next.get(key);
    if (next === undefined) {
      next = newNode();
      this.node.next.set(key, next);
      this.cache.nodes += 1;
    }
    this.node = next;
  }
}

/** Numbers for element lists: never reused, so a number on a path always means one content. */
const LISTS = { byIdentity: new WeakMap<readonly string[], number>(), byContent: new Map<string, number>(), next: 0 };

/** The holes' steps. */
const STEP = {
  message: Symbol('message'),
  resource: Symbol('resource'),
  patient: Symbol('patient'),
  seq: Symbol('seq'),
  verified: Symbol('verified'),
  unwrapped: Symbol('unwrapped'),
  delivery: Symbol('delivery'),
  released: Symbol('released'),
  signed: Symbol('signed'),
} as const;

/** Compile-time guard: every field of a fact is either a hole or on the template's path (a new field fails to compile until placed). */
function none(_rest: Record<string, never>): void {}

function actor(a: AuditActor, h: Holes): AuditActor {
  const { service, address, ...rest } = a;
  none(rest);
  h.fixed(service);
  h.fixed(address);
  return a;
}

function subjectOf(s: AuditSubject, h: Holes): AuditSubject | undefined {
  const { messageId, resourceType, resourcePseudonym, patientPseudonym, patientPseudonyms, ...rest } = s;
  none(rest);
  // A Bundle's entry patients are deduplicated by value: the builder branches on them.
  if (patientPseudonyms !== undefined) return undefined;
  const skeleton: { -readonly [K in keyof AuditSubject]: AuditSubject[K] } = {
    messageId: h.hole(STEP.message, messageId),
    resourceType: h.fixed(resourceType),
  };
  if (resourcePseudonym !== undefined) skeleton.resourcePseudonym = h.hole(STEP.resource, resourcePseudonym);
  if (patientPseudonym !== undefined) skeleton.patientPseudonym = h.hole(STEP.patient, patientPseudonym);
  return skeleton;
}

/** The fact with placeholders in its holes; undefined for kinds (and shapes) that are not templated. */
function skeletonOf(fact: AuditFact, h: Holes): AuditFact | undefined {
  switch (fact.kind) {
    case 'accepted': {
      const { kind, sender, subject, ingestSeq, keys, ...rest } = fact;
      none(rest);
      h.fixed(kind);
      const s = subjectOf(subject, h);
      if (s === undefined) return undefined;
      // The builder writes the sequence as a string (String(ingestSeq)), so its placeholder stands in for the number.
      const seq = h.hole(STEP.seq, String(ingestSeq)) as unknown as number;
      if (keys === undefined) return { kind, sender: actor(sender, h), subject: s, ingestSeq: seq };
      const { verified, unwrapped, ...restKeys } = keys;
      none(restKeys);
      return {
        kind,
        sender: actor(sender, h),
        subject: s,
        ingestSeq: seq,
        keys: { verified: h.hole(STEP.verified, verified), unwrapped: h.hole(STEP.unwrapped, unwrapped) },
      };
    }
    case 'delivered': {
      const { kind, sender, recipient, subject, profileUrl, purpose, elements, deliveryId, keys, ...rest } = fact;
      none(rest);
      h.fixed(kind);
      const s = subjectOf(subject, h);
      if (s === undefined) return undefined;
      const common = {
        kind,
        sender: actor(sender, h),
        recipient: actor(recipient, h),
        subject: s,
        profileUrl: h.fixed(profileUrl),
        purpose: h.fixed(purpose),
        elements: h.list(elements),
        deliveryId: h.hole(STEP.delivery, deliveryId),
      };
      if (keys === undefined) return common;
      const { released, signed, ...restKeys } = keys;
      none(restKeys);
      return { ...common, keys: { released: h.hole(STEP.released, released), signed: h.hole(STEP.signed, signed) } };
    }
    // A withheld copy (a restriction, a profile or size refusal) is rare: it goes through the builder, whose text
    // for it turns the code and path into a description — not worth a template that must track that.
    default:
      return undefined;
  }
}

/** The builder's event for the skeleton, serialised and cut at its placeholders; null when it cannot be cut cleanly. */
function templateOf(skeleton: AuditFact, holes: number, ctx: EventContext): Template | null {
  const event: AuditEvent = buildAuditEventAs(skeleton, ctx, String.fromCharCode(HOLE), String.fromCharCode(HOLE + 1));
  const cut = cutAt(JSON.stringify(event));
  // Every placeholder must name a hole of this fact; a catalog value that happens to contain a placeholder
  // character fails here or in the caller's comparison with the builder.
  if (holes > MAX_HOLES || !cut.slots.every((s) => s >= HOLE && s < HOLE + holes)) return null;
  return cut;
}

function cutAt(text: string): Template {
  const texts: string[] = [];
  const slots: number[] = [];
  let from = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    texts.push(ownCopy(text.slice(from, m.index)));
    slots.push(m[0].charCodeAt(0));
    from = m.index + 1;
  }
  texts.push(ownCopy(text.slice(from)));
  return { texts, slots };
}

/**
 * The piece as a string of its own: V8 keeps a slice of a string that held a placeholder (beyond Latin-1) as
 * two-byte characters, which would make every event composed from it two-byte — twice the memory, and a
 * slower UTF-8 encode when the record is written. Latin-1 text is copied back to one byte per character.
 */
function ownCopy(piece: string): string {
  return /^[\x00-\xff]*$/.test(piece) ? Buffer.from(piece, 'latin1').toString('latin1') : piece;
}

function fill(t: Template, values: readonly string[]): string {
  let out = t.texts[0] as string;
  for (let i = 0; i < t.slots.length; i++)
    out += jsonText(values[(t.slots[i] as number) - HOLE] as string) + (t.texts[i + 1] as string);
  return out;
}

/** Printable ASCII but `"` and `\`: JSON writes it as it is (ids, pseudonyms, key ids, element paths). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** A string's JSON text without its quotes. */
function jsonText(s: string): string {
  return PLAIN.test(s) ? s : JSON.stringify(s).slice(1, -1);
}
