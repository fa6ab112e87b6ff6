// The audit chain's record format (docs/audit.md): one JetStream message on `phi.audit.<instanceId>` per
// record, JSON, holding either a block of FHIR R4 AuditEvents or a signed checkpoint of the chain head.
//   { "v": 1, "chain": <instanceId>, "seq": <1, 2, 3 …>, "prev": <SHA-256 of the previous record's exact
//     bytes, base64url; null for seq 1>, "at": <ms since epoch>, "events": [AuditEvent …] }
//   { … same header …, "checkpoint": { "head": seq − 1, "kid": <broker signing key id>, "sig": <Ed25519>,
//     "final"?: true } }
// A checkpoint signs (chain, head, prev): prev is the hash of the head record, which commits to every record
// before it, so one signature seals the whole prefix (the signed-tree-head idea of RFC 6962 §3.5, over a
// linear chain). Hashes are over the bytes as stored, never a re-serialisation (45 CFR 164.312(c)(1)).
import { createHash } from 'node:crypto';
import type { AuditEvent } from 'fhir/r4.js';

export const RECORD_VERSION = 1;

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
  readonly v: typeof RECORD_VERSION;
  readonly chain: string;
  readonly seq: number;
  readonly prev: string | null;
  readonly at: number;
  readonly events?: readonly AuditEvent[];
  readonly checkpoint?: Checkpoint;
}

/** base64url(SHA-256(bytes)). */
export function recordHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}

function header(chain: string, seq: number, prev: string | null, at: number): string {
  return `{"v":${RECORD_VERSION},"chain":${JSON.stringify(chain)},"seq":${seq},"prev":${prev === null ? 'null' : JSON.stringify(prev)},"at":${at}`;
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
  const head = `${header(chain, seq, prev, at)},"events":[`;
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

export function encodeCheckpointRecord(
  chain: string,
  seq: number,
  prev: string | null,
  at: number,
  checkpoint: Checkpoint,
): Uint8Array {
  return Buffer.from(`${header(chain, seq, prev, at)},"checkpoint":${JSON.stringify(checkpoint)}}`, 'utf8');
}

/** The exact bytes a checkpoint signature covers. */
export function checkpointPayload(chain: string, head: number, prev: string | null): Uint8Array {
  return Buffer.from(`phi-broker audit checkpoint v1\n${chain}\n${head}\n${prev ?? ''}`, 'utf8');
}

/** Parses a record; undefined when the bytes are not a v1 chain record. */
export function decodeRecord(bytes: Uint8Array): ChainRecord | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const r = json as Record<string, unknown>;
  if (
    r['v'] !== RECORD_VERSION ||
    typeof r['chain'] !== 'string' ||
    !Number.isSafeInteger(r['seq']) ||
    (r['seq'] as number) < 1
  )
    return undefined;
  if (r['prev'] !== null && typeof r['prev'] !== 'string') return undefined;
  if (typeof r['at'] !== 'number') return undefined;
  const events = r['events'];
  const cp = r['checkpoint'] as Record<string, unknown> | undefined;
  if (events !== undefined && !Array.isArray(events)) return undefined;
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
