// Quarantine: every rejected input is kept, never silently dropped ("nothing lost"). A record is one or more
// NATS messages on phi.quarantine.<sender> (stream PHI_QUARANTINE): the record's facts — code, message
// naming element paths, sender id, type, message id, time; never a value — travel in the `Phi-Record`
// header, and the payload is the input itself (which may be anything a caller sent, even plaintext PHI that
// failed to parse) sealed with the broker's current quarantine key version, which the record names
// (XChaCha20-Poly1305, docs/wire-format.md). The sealed copy is binary (the input plus 48 bytes, the subject and
// the signature) and split over several messages when it would not fit in one NATS message, so an input that NATS
// carried in can always be kept.
import { z } from 'zod';
import { openBlob, sealBlob } from '../crypto/aead.js';
import { BrokerError, isBrokerErrorCode, type BrokerErrorCode } from '../wire/errors.js';
import { tryDecodeJson } from '../wire/decode-json.js';
import type { RejectionThrottleSettings, ThrottleSummary } from './rejection-throttle.js';

export interface QuarantineInput {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly signature: string | undefined;
  readonly ingestSeq: number;
}

export interface QuarantineRecord {
  readonly v: 1;
  readonly id: string;
  readonly code: BrokerErrorCode;
  readonly message: string;
  readonly path?: string;
  readonly sender?: string;
  readonly type?: string;
  readonly messageId?: string;
  readonly at: number;
  /** How many messages carry the sealed original (`Phi-Part: i/n`); 0 when the original was not kept. */
  readonly parts: number;
  /** The quarantine key version that sealed the original; a record without it was sealed with version 1. */
  readonly keyVersion?: number;
  /** When the original was not kept (E_QUARANTINE_QUOTA): the code it was rejected with … */
  readonly cause?: BrokerErrorCode;
  /** … and its size in bytes (a throttle summary: all its inputs'). */
  readonly size?: number;
  /** A throttle summary (E_SENDER_THROTTLED): how many rejections it stands for, by code, since when. */
  readonly count?: number;
  readonly codes?: Readonly<Record<string, number>>;
  readonly since?: number;
}

export interface QuarantinedOriginal {
  readonly subject: string;
  readonly signature?: string;
  readonly data: Uint8Array;
}

const recordSchema = z.strictObject({
  v: z.literal(1),
  id: z.string().regex(/^q-[0-9]+$/),
  code: z.string().refine(isBrokerErrorCode),
  message: z.string(),
  path: z.string().optional(),
  sender: z.string().optional(),
  type: z.string().optional(),
  messageId: z.string().optional(),
  at: z.number(),
  parts: z.number().int().min(0),
  keyVersion: z.number().int().min(1).optional(),
  cause: z.string().refine(isBrokerErrorCode).optional(),
  size: z.number().int().min(0).optional(),
  count: z.number().int().min(1).optional(),
  codes: z.record(z.string().refine(isBrokerErrorCode), z.number().int().min(1)).optional(),
  since: z.number().optional(),
});

function aad(recordId: string): Uint8Array {
  return new TextEncoder().encode(`phi-broker/quarantine/v1|${recordId}`);
}

export function quarantineRecordId(ingestSeq: number): string {
  return `q-${ingestSeq}`;
}

/** subject and signature as length-prefixed UTF-8 (u32 big-endian), then the input bytes as they came. */
function frame(input: QuarantineInput): Uint8Array {
  const subject = Buffer.from(input.subject, 'utf8');
  const sig = Buffer.from(input.signature ?? '', 'utf8');
  const out = Buffer.alloc(8 + subject.length + sig.length + input.data.byteLength);
  out.writeUInt32BE(subject.length, 0);
  subject.copy(out, 4);
  out.writeUInt32BE(sig.length, 4 + subject.length);
  sig.copy(out, 8 + subject.length);
  out.set(input.data, 8 + subject.length + sig.length);
  return out;
}

function unframe(bytes: Uint8Array): QuarantinedOriginal {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (): BrokerError =>
    new BrokerError('E_DECRYPT', 'quarantine copy is not in the expected frame', { path: 'sealed' });
  if (b.length < 8) throw bad();
  const subjectLen = b.readUInt32BE(0);
  if (4 + subjectLen + 4 > b.length) throw bad();
  const sigLen = b.readUInt32BE(4 + subjectLen);
  const dataStart = 8 + subjectLen + sigLen;
  if (dataStart > b.length) throw bad();
  const subject = b.subarray(4, 4 + subjectLen).toString('utf8');
  const signature = b.subarray(8 + subjectLen, dataStart).toString('utf8');
  const data = new Uint8Array(b.subarray(dataStart));
  return signature === '' ? { subject, data } : { subject, signature, data };
}

/** The quarantine key that seals new records: the current version of the broker secrets. */
export interface QuarantineSealKey {
  readonly version: number;
  readonly key: Uint8Array;
}

/** The record and the sealed original, cut into parts of at most `maxPartBytes`. */
export function buildQuarantine(
  input: QuarantineInput,
  error: BrokerError,
  facts: { sender?: string; type?: string; messageId?: string; at: number },
  sealKey: QuarantineSealKey,
  maxPartBytes = Number.MAX_SAFE_INTEGER,
): { record: QuarantineRecord; parts: Uint8Array[] } {
  if (!Number.isInteger(maxPartBytes) || maxPartBytes < 1024)
    throw new TypeError('maxPartBytes must be an integer >= 1024');
  const id = quarantineRecordId(input.ingestSeq);
  const sealed = sealBlob(sealKey.key, frame(input), aad(id));
  const parts: Uint8Array[] = [];
  for (let off = 0; off < sealed.byteLength; off += maxPartBytes) parts.push(sealed.subarray(off, off + maxPartBytes));
  const record: QuarantineRecord = {
    v: 1,
    id,
    code: error.code,
    message: error.message,
    ...(error.path === undefined ? {} : { path: error.path }),
    ...(facts.sender === undefined ? {} : { sender: facts.sender }),
    ...(facts.type === undefined ? {} : { type: facts.type }),
    ...(facts.messageId === undefined ? {} : { messageId: facts.messageId }),
    at: facts.at,
    parts: parts.length,
    keyVersion: sealKey.version,
  };
  return { record, parts };
}

/**
 * The small record kept instead of the original when its sender is over its quarantine quota: the facts of the
 * rejection (`cause`), the input's size and no part of it.
 */
export function buildQuotaRecord(
  input: QuarantineInput,
  cause: BrokerError,
  facts: { sender?: string; type?: string; messageId?: string; at: number },
): QuarantineRecord {
  const where = cause.path === undefined ? '' : `${cause.path}: `;
  return {
    v: 1,
    id: quarantineRecordId(input.ingestSeq),
    code: 'E_QUARANTINE_QUOTA',
    message: `${where}sender over its quarantine quota; the input (${cause.code}, ${input.data.byteLength} bytes) was not kept`,
    ...(cause.path === undefined ? {} : { path: cause.path }),
    ...(facts.sender === undefined ? {} : { sender: facts.sender }),
    ...(facts.type === undefined ? {} : { type: facts.type }),
    ...(facts.messageId === undefined ? {} : { messageId: facts.messageId }),
    at: facts.at,
    parts: 0,
    cause: cause.code,
    size: input.data.byteLength,
  };
}

/**
 * The one record that stands for a sender's throttled window (docs/broker.md "Storage limits"): how many rejections
 * were refused and their codes, with no part of any input. Its id is the first throttled input's.
 */
export function buildThrottleRecord(summary: ThrottleSummary, settings: RejectionThrottleSettings): QuarantineRecord {
  const codes = Object.entries(summary.codes)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([c, n]) => `${c} × ${n}`)
    .join(', ');
  return {
    v: 1,
    id: quarantineRecordId(summary.firstSeq),
    code: 'E_SENDER_THROTTLED',
    message: `${summary.count} rejection${summary.count === 1 ? '' : 's'} refused over the sender's rejection rate (${settings.maxRejections} per ${settings.windowMs} ms): ${codes}; the inputs were not kept`,
    ...(summary.sender === '' ? {} : { sender: summary.sender }),
    at: summary.until,
    parts: 0,
    size: summary.bytes,
    count: summary.count,
    codes: summary.codes,
    since: summary.since,
  };
}

/** The `Phi-Record` header value: JSON (no line breaks: JSON.stringify escapes them). */
export function encodeRecordHeader(record: QuarantineRecord): string {
  return JSON.stringify(record);
}

export function decodeRecordHeader(text: string): QuarantineRecord {
  const parsed = tryDecodeJson(new TextEncoder().encode(text), recordSchema, {
    what: 'quarantine record header',
    code: 'E_ENVELOPE_INVALID',
  });
  if (!parsed.ok) throw new BrokerError('E_ENVELOPE_INVALID', 'not a quarantine record header', { path: 'Phi-Record' });
  return parsed.value as QuarantineRecord;
}

/** The quarantine key version that sealed the record's original (1 for records that name none). */
export function quarantineKeyVersion(record: QuarantineRecord): number {
  return record.keyVersion ?? 1;
}

/** For an operator with the record's quarantine key version: the original input from its parts, in order. */
export function openQuarantine(
  record: QuarantineRecord,
  parts: readonly Uint8Array[],
  key: Uint8Array,
): QuarantinedOriginal {
  if (record.parts === 0)
    throw new BrokerError('E_QUARANTINE_QUOTA', `quarantine record ${record.id}: the original was not kept`, {
      path: 'parts',
    });
  if (parts.length !== record.parts)
    throw new BrokerError(
      'E_DECRYPT',
      `quarantine record ${record.id} has ${record.parts} parts; ${parts.length} given`,
      { path: 'parts' },
    );
  const sealed =
    parts.length === 1 ? (parts[0] as Uint8Array) : new Uint8Array(Buffer.concat(parts.map((p) => Buffer.from(p))));
  return unframe(openBlob(key, sealed, aad(record.id), 'sealed'));
}
