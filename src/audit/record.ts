// The audit chain's record format (docs/audit.md): one JetStream message on `phi.audit.<instanceId>` per
// record, JSON, holding the facts of a block of decisions (v3; v2 still read), a block of FHIR R4 AuditEvents (v1,
// still read) or a signed checkpoint of the chain head.
//   { "v": 3, … the v2 header …, "vals": [value table], "facts": [[<ms before at>, [<shape>, <value>…], <id>?] …] }
//     (v3: each fact's key names once per record, a delivery id derivable from its fact left out, a profile URL's
//     base written once; docs/audit.md "Record v3")
//   { "v": 2, "chain": <instanceId>, "seq": <1, 2, 3 …>, "prev": <SHA-256 of the previous record's exact
//     bytes, base64url; null for seq 1>, "at": <ms since epoch>, "host"?: <writer's host>, "rec"?: <recorder>,
//     "vals": [value table], "facts": [[<ms before at>, <fact>, <event id>?] …] }   (facts-codec.ts, render.ts)
//   { "v": 1, … same header …, "events": [AuditEvent …] }
//   { … same header …, "checkpoint": { "head": seq − 1, "kid": <broker signing key id>, "sig": <Ed25519>,
//     "final"?: true } }
// A checkpoint signs (chain, head, prev): prev is the hash of the head record, which commits to every record
// before it, so one signature seals the whole prefix (the signed-tree-head idea of RFC 6962 §3.5, over a
// linear chain). Hashes are over the bytes as stored, never a re-serialisation (45 CFR 164.312(c)(1)).
import { createHash } from 'node:crypto';
import type { AuditEvent } from 'fhir/r4.js';
import type { Recorder } from './event.js';
import { AUDIT_FACT_KINDS, type AuditFact } from './facts.js';
import { FactReader, FactTable } from './facts-codec.js';
import { renderEventJson, type FactEntry, type RecordSource } from './render.js';
import { deliveryId } from '../wire/ids.js';

export type { FactEntry, RecordSource } from './render.js';

/** The version of the records the writer stores: facts by shape, rendered as AuditEvents on read. */
export const RECORD_VERSION = 3;
/** Records holding facts as objects, still read and verified. */
export const RECORD_VERSION_OBJECTS = 2;
/** Records holding whole AuditEvents, still read and verified. */
export const RECORD_VERSION_EVENTS = 1;
export type RecordVersion = typeof RECORD_VERSION | typeof RECORD_VERSION_OBJECTS | typeof RECORD_VERSION_EVENTS;
/** The versions whose records hold facts. */
export type FactsVersion = typeof RECORD_VERSION | typeof RECORD_VERSION_OBJECTS;

export interface Checkpoint {
  /** The chain sequence of the record this checkpoint seals (its own seq − 1). */
  readonly head: number;
  readonly kid: string;
  /** Ed25519 signature (base64url) over checkpointPayload(chain, head, prev). */
  readonly sig: string;
  /** Written when the broker stops cleanly: nothing follows in this chain. */
  readonly final?: true;
}

export interface ChainRecord {
  readonly v: RecordVersion;
  readonly chain: string;
  readonly seq: number;
  readonly prev: string | null;
  readonly at: number;
  /** The AuditEvents: as stored (v1) or rendered from the facts (v2, v3). */
  readonly events?: readonly AuditEvent[];
  /** v2, v3: the facts, each with its event's id and time. */
  readonly facts?: readonly Required<FactEntry>[];
  readonly source?: RecordSource;
  readonly checkpoint?: Checkpoint;
}

/** base64url(SHA-256(bytes)). */
export function recordHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}

function header(
  chain: string,
  seq: number,
  prev: string | null,
  at: number,
  v: RecordVersion = RECORD_VERSION,
): string {
  return `{"v":${v},"chain":${JSON.stringify(chain)},"seq":${seq},"prev":${prev === null ? 'null' : JSON.stringify(prev)},"at":${at}`;
}

/**
 * A block record from AuditEvents already serialised as JSON (each serialised once, when it is queued). The
 * same bytes as the UTF-8 of `${header},"events":[${eventsJson.join(',')}]}`, each piece encoded straight into
 * one buffer of the exact size: no joined string, no flattened copy of it.
 */
export function encodeEventsRecord(
  chain: string,
  seq: number,
  prev: string | null,
  at: number,
  eventsJson: readonly string[],
): Uint8Array {
  const head = `${header(chain, seq, prev, at, RECORD_VERSION_EVENTS)},"events":[`;
  let size = Buffer.byteLength(head, 'utf8') + Math.max(eventsJson.length - 1, 0) + 2;
  for (const e of eventsJson) size += Buffer.byteLength(e, 'utf8');
  const out = Buffer.allocUnsafe(size);
  let offset = out.write(head, 0, 'utf8');
  for (let i = 0; i < eventsJson.length; i++) {
    if (i > 0) out[offset++] = 0x2c; // ,
    offset += out.write(eventsJson[i] as string, offset, 'utf8');
  }
  out[offset++] = 0x5d; // ]
  out[offset++] = 0x7d; // }
  return out;
}

/** A delivered fact's delivery id as the broker makes it, `<message id>.<recipient>`: left out of a v3 record. */
function derivedDeliveryId(fact: AuditFact): string | undefined {
  return fact.kind === 'delivered' ? deliveryId(fact.subject.messageId, fact.recipient.service) : undefined;
}

/**
 * The body of a v2 or v3 record after its header: the writer's source, the value table and the facts, each with how
 * many ms before the record's `at` it was recorded (so the body depends on `at` but not on seq or prev).
 */
export function encodeFactsBody(
  at: number,
  source: RecordSource,
  entries: readonly FactEntry[],
  v: FactsVersion = RECORD_VERSION,
): string {
  const table = new FactTable(v === RECORD_VERSION);
  let facts = '';
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as FactEntry;
    const id = e.id === undefined ? '' : `,${JSON.stringify(e.id)}`;
    const f = e.fact;
    const fact =
      v === RECORD_VERSION_OBJECTS
        ? table.fact(f)
        : table.shaped(f, f.kind === 'delivered' && f.deliveryId === derivedDeliveryId(f) ? 'deliveryId' : undefined);
    facts += `${i > 0 ? ',' : ''}[${at - e.at},${fact}${id}]`;
  }
  const host = source.host === undefined ? '' : `,"host":${JSON.stringify(source.host)}`;
  const rec = source.recorder === undefined || source.recorder === 'broker' ? '' : `,"rec":"${source.recorder}"`;
  return `${host}${rec},"vals":${table.text()},"facts":[${facts}]}`;
}

export function encodeFactsRecord(
  chain: string,
  seq: number,
  prev: string | null,
  at: number,
  body: string,
  v: FactsVersion = RECORD_VERSION,
): Uint8Array {
  return Buffer.from(header(chain, seq, prev, at, v) + body, 'utf8');
}

export function encodeCheckpointRecord(
  chain: string,
  seq: number,
  prev: string | null,
  at: number,
  checkpoint: Checkpoint,
  v: RecordVersion = RECORD_VERSION,
): Uint8Array {
  return Buffer.from(`${header(chain, seq, prev, at, v)},"checkpoint":${JSON.stringify(checkpoint)}}`, 'utf8');
}

/** The exact bytes a checkpoint signature covers. */
export function checkpointPayload(chain: string, head: number, prev: string | null): Uint8Array {
  return Buffer.from(`phi-broker audit checkpoint v1\n${chain}\n${head}\n${prev ?? ''}`, 'utf8');
}

/**
 * Parses a record, rendering a v2 or v3 record's facts as AuditEvents (render.ts); undefined when the bytes are not a
 * chain record, or its facts do not decode or render.
 */
export function decodeRecord(bytes: Uint8Array): ChainRecord | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const r = json as Record<string, unknown>;
  const v = r['v'];
  if (
    (v !== RECORD_VERSION && v !== RECORD_VERSION_OBJECTS && v !== RECORD_VERSION_EVENTS) ||
    typeof r['chain'] !== 'string' ||
    !Number.isSafeInteger(r['seq']) ||
    (r['seq'] as number) < 1
  )
    return undefined;
  if (r['prev'] !== null && typeof r['prev'] !== 'string') return undefined;
  if (typeof r['at'] !== 'number') return undefined;
  const cp = r['checkpoint'] as Record<string, unknown> | undefined;
  if (v !== RECORD_VERSION_EVENTS && r['facts'] !== undefined) {
    if (r['events'] !== undefined || cp !== undefined) return undefined;
    return decodeFacts(r, v);
  }
  const events = r['events'];
  if (events !== undefined && (!Array.isArray(events) || v !== RECORD_VERSION_EVENTS)) return undefined;
  if ((events === undefined) === (cp === undefined)) return undefined;
  if (
    cp !== undefined &&
    (typeof cp !== 'object' ||
      cp === null ||
      !Number.isSafeInteger(cp['head']) ||
      typeof cp['kid'] !== 'string' ||
      typeof cp['sig'] !== 'string')
  )
    return undefined;
  return json as ChainRecord;
}

const KINDS: ReadonlySet<string> = new Set(AUDIT_FACT_KINDS);
const RECORDERS: ReadonlySet<unknown> = new Set<Recorder>(['broker', 'gateway', 'cli']);

/** A v3 fact (`[shape, value…]`), its left-out delivery id put back; undefined when it does not decode. */
function shapedFact(reader: FactReader, encoded: unknown): Record<string, unknown> | undefined {
  const fact = reader.shaped(encoded);
  if (fact === undefined || fact['kind'] !== 'delivered' || fact['deliveryId'] !== undefined) return fact;
  const subject = fact['subject'] as { messageId?: unknown } | undefined;
  const recipient = fact['recipient'] as { service?: unknown } | undefined;
  if (typeof subject?.messageId !== 'string' || typeof recipient?.service !== 'string') return undefined;
  fact['deliveryId'] = deliveryId(subject.messageId, recipient.service);
  return fact;
}

function decodeFacts(r: Record<string, unknown>, v: FactsVersion): ChainRecord | undefined {
  const { chain, at, host, rec } = r as { chain: string; at: number; host?: unknown; rec?: unknown };
  if (host !== undefined && typeof host !== 'string') return undefined;
  if (rec !== undefined && (!RECORDERS.has(rec) || rec === 'broker')) return undefined;
  const list = r['facts'];
  const reader = FactReader.of(r['vals'], v === RECORD_VERSION);
  if (reader === undefined || !Array.isArray(list) || !Number.isSafeInteger(at)) return undefined;
  const source: RecordSource = {
    ...(host === undefined ? {} : { host }),
    ...(rec === undefined ? {} : { recorder: rec as Recorder }),
  };
  const facts: Required<FactEntry>[] = [];
  const events: AuditEvent[] = [];
  for (const [i, entry] of (list as unknown[]).entries()) {
    if (!Array.isArray(entry) || entry.length < 2 || entry.length > 3) return undefined;
    const [dt, encoded, id] = entry as [unknown, unknown, unknown];
    if (!Number.isSafeInteger(dt) || (id !== undefined && typeof id !== 'string')) return undefined;
    const fact = v === RECORD_VERSION ? shapedFact(reader, encoded) : reader.fact(encoded);
    if (fact === undefined || typeof fact['kind'] !== 'string' || !KINDS.has(fact['kind'])) return undefined;
    const stored: FactEntry = {
      fact: fact as unknown as AuditFact,
      at: at - (dt as number),
      ...(id === undefined ? {} : { id: id as string }),
    };
    let event: AuditEvent;
    try {
      event = JSON.parse(renderEventJson(stored, { chain, seq: r['seq'] as number, index: i, source })) as AuditEvent;
    } catch {
      return undefined; // a fact the builder cannot render (not one the writer stores)
    }
    facts.push({ ...stored, id: event.id as string });
    events.push(event);
  }
  return {
    v,
    chain,
    seq: r['seq'] as number,
    prev: r['prev'] as string | null,
    at,
    source,
    facts,
    events,
  };
}
