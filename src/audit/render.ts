// Rendering a v2 record's facts as FHIR R4 AuditEvents (docs/audit.md "Record v2"): the builder (event.ts) with the
// record's chain, host and recorder as its context, the event's `recorded` from the fact's time and its id either
// stored with the fact (an alert announced before it was stored) or derived from where the fact sits in the chain.
// The text is what a v1 writer would have stored for the same fact, id and time.
import { createHash } from 'node:crypto';
import { buildAuditEventAs, type EventContext, type Recorder } from './event.js';
import type { AuditFact } from './facts.js';

/** A decision to store in a v2 record: its fact, when it was recorded and, when already announced, its event id. */
export interface FactEntry {
  readonly fact: AuditFact;
  /** ms since epoch: the AuditEvent's `recorded`. */
  readonly at: number;
  /** The event id, when the event was shown before it was stored (an alert); otherwise derived (eventId). */
  readonly id?: string;
}

/** What a v2 record says about its writer, for the rendered events' source and self agent. */
export interface RecordSource {
  readonly host?: string;
  readonly recorder?: Recorder;
}

/** Where a fact sits: its chain, its record's chain sequence and its index among the record's facts. */
export interface FactPlace {
  readonly chain: string;
  readonly seq: number;
  readonly index: number;
  readonly source: RecordSource;
}

/**
 * The derived event id: a UUID (RFC 9562 version 8, custom) from the first 16 bytes of
 * SHA-256("phi-broker audit event v2\n<chain>\n<seq>\n<index>"). Unique because a chain has one writer and a
 * sequence is stored once.
 */
export function eventId(chain: string, seq: number, index: number): string {
  const b = createHash('sha256').update(`phi-broker audit event v2\n${chain}\n${seq}\n${index}`, 'utf8').digest();
  b[6] = ((b[6] as number) & 0x0f) | 0x80; // version 8
  b[8] = ((b[8] as number) & 0x3f) | 0x80; // variant 10 (RFC 9562)
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const CONTEXTS = new Map<string, EventContext>();
const MAX_CONTEXTS = 1024;

/** One context per writer, so the builder's per-context caches (source, self agent) are shared across records. */
function contextOf(chain: string, source: RecordSource): EventContext {
  const key = `${chain}\n${source.host ?? ''}\n${source.host === undefined ? 0 : 1}\n${source.recorder ?? 'broker'}`;
  let ctx = CONTEXTS.get(key);
  if (ctx === undefined) {
    if (CONTEXTS.size >= MAX_CONTEXTS) CONTEXTS.clear();
    ctx = {
      instanceId: chain,
      ...(source.host === undefined ? {} : { host: source.host }),
      ...(source.recorder === undefined ? {} : { recorder: source.recorder }),
      now: () => {
        throw new TypeError('rendering takes the time from the record');
      },
      newId: () => {
        throw new TypeError('rendering takes the id from the record');
      },
    };
    CONTEXTS.set(key, ctx);
  }
  return ctx;
}

/** The AuditEvent JSON of one stored fact: JSON.stringify(buildAuditEventAs(fact, ctx, id, recorded)). */
export function renderEventJson(entry: FactEntry, place: FactPlace): string {
  const id = entry.id ?? eventId(place.chain, place.seq, place.index);
  const recorded = new Date(entry.at).toISOString();
  return JSON.stringify(buildAuditEventAs(entry.fact, contextOf(place.chain, place.source), id, recorded));
}
