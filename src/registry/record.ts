// One patient's entry in the patient-to-service registry (KV phi_registry, value format v1): which services
// hold data about the patient, in which role (source: published it; recipient: received a projection of it),
// which resource types, under which purposes of use (HL7 v3 PurposeOfUse, from the catalog subscription),
// first and last seen, and how many messages. Ids, type names, codes and times only — never a value from a
// resource. Pure: merging an observation into a record, and the JSON form with its zod check.
import { z } from 'zod';
import { decodeJson } from '../wire/decode-json.js';

/**
 * How many recent ingest message ids a record remembers, so a redelivered message counts once. Twice the
 * broker's default in-flight limit: one group-committed write (src/registry/store.ts) can carry every message
 * in flight about one patient, and a redelivery (ack wait expired under load, or a write that landed although
 * its ack was lost) must still find its id after that batch and the next.
 */
export const RECENT_IDS = 128;

export type RegistryRole = 'source' | 'recipient';

export interface RoleRecord {
  readonly types: readonly string[];
  /** Purposes of use the service received under (a publisher states none: empty for `source`). */
  readonly purposes: readonly string[];
  /** ISO 8601 UTC. */
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly count: number;
}

export interface ServiceRecord {
  readonly source?: RoleRecord;
  readonly recipient?: RoleRecord;
}

export interface RegistryRecord {
  readonly v: 1;
  readonly services: Readonly<Record<string, ServiceRecord>>;
  /** Ingest message ids most recently counted here, newest last (at most RECENT_IDS). */
  readonly recent: readonly string[];
}

/** One message's contribution: its sender, and every subscriber it was delivered to. */
export interface Observation {
  /** The ingest message id (envelope id). */
  readonly messageId: string;
  /** The resource types about the patient: the resource's, or for a Bundle those of its entries about this patient. */
  readonly types: readonly string[];
  readonly at: number;
  readonly source: string;
  readonly recipients: readonly { readonly service: string; readonly purpose: string }[];
}

const roleSchema = z.strictObject({
  types: z.array(z.string()),
  purposes: z.array(z.string()),
  firstSeen: z.string(),
  lastSeen: z.string(),
  count: z.number().int().min(0),
});

const recordSchema = z.strictObject({
  v: z.literal(1),
  services: z.record(z.string(), z.strictObject({ source: roleSchema.optional(), recipient: roleSchema.optional() })),
  recent: z.array(z.string()),
});

export function emptyRecord(): RegistryRecord {
  return { v: 1, services: {}, recent: [] };
}

/** The record with the observation merged in; the same record when the message was already counted. */
export function applyObservation(record: RegistryRecord, obs: Observation): RegistryRecord {
  if (record.recent.includes(obs.messageId)) return record;
  const at = new Date(obs.at).toISOString();
  const services: Record<string, ServiceRecord> = { ...record.services };
  let newService = touch(services, obs.source, 'source', obs.types, undefined, at);
  for (const r of obs.recipients)
    newService = touch(services, r.service, 'recipient', obs.types, r.purpose, at) || newService;
  // The newest RECENT_IDS ids, this one last: one copy of the list (the record before it stays as it was).
  const keep = Math.min(record.recent.length, RECENT_IDS - 1);
  const recent = record.recent.slice(record.recent.length - keep);
  recent.push(obs.messageId);
  // Services stay in key order (a stable serialisation); only a service seen for the first time can break it.
  return { v: 1, services: newService ? sortKeys(services) : services, recent };
}

/** Merges one role of one service into `services`; true when the service had no entry yet. */
function touch(
  services: Record<string, ServiceRecord>,
  service: string,
  role: RegistryRole,
  types: readonly string[],
  purpose: string | undefined,
  at: string,
): boolean {
  const current = services[service];
  services[service] =
    current === undefined
      ? { [role]: mergeRole(undefined, types, purpose, at) }
      : { ...current, [role]: mergeRole(current[role], types, purpose, at) };
  return current === undefined;
}

function mergeRole(
  role: RoleRecord | undefined,
  types: readonly string[],
  purpose: string | undefined,
  at: string,
): RoleRecord {
  if (role === undefined)
    return {
      types: addSorted([], types),
      purposes: purpose === undefined ? [] : [purpose],
      firstSeen: at,
      lastSeen: at,
      count: 1,
    };
  return {
    types: addSorted(role.types, types),
    purposes: purpose === undefined ? role.purposes : addSorted(role.purposes, [purpose]),
    // Several brokers may apply messages out of order: first/last are min/max, not the latest write.
    firstSeen: at < role.firstSeen ? at : role.firstSeen,
    lastSeen: at > role.lastSeen ? at : role.lastSeen,
    count: role.count + 1,
  };
}

/** `list` with the items it lacks, sorted; `list` itself when it lacks none (records are never mutated). */
function addSorted(list: readonly string[], items: readonly string[]): readonly string[] {
  let out: string[] | undefined;
  for (const item of items) {
    if (list.includes(item) || out?.includes(item) === true) continue;
    (out ??= list.slice()).push(item);
  }
  return out === undefined ? list : out.sort();
}

function sortKeys<V>(o: Record<string, V>): Record<string, V> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const utf8 = new TextEncoder();

export function encodeRecord(record: RegistryRecord): Uint8Array {
  return utf8.encode(JSON.stringify(record));
}

/** Parses a stored value; E_JSON_MALFORMED or E_STORED_INVALID (naming the element) when it is not a v1 record. */
export function decodeRecord(bytes: Uint8Array): RegistryRecord {
  return decodeJson(bytes, recordSchema, { what: 'registry record', code: 'E_STORED_INVALID' }) as RegistryRecord;
}
