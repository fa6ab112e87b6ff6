// Quarantine: every rejected input is kept, never silently dropped ("nothing lost"). The record's
// plaintext holds only routing facts (code, path, sender id, type, message id, times); the input itself —
// which may be anything a caller sent, even plaintext PHI that failed to parse — is sealed with the
// broker's quarantine key (XChaCha20-Poly1305, docs/wire-format.md) before it reaches the stream.
import { z } from 'zod';
import { openBlob, sealBlob } from '../crypto/aead.js';
import type { BrokerError, BrokerErrorCode } from '../errors.js';

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
  /** base64url(nonce || ciphertext) of the sealed original (subject, signature, bytes). */
  readonly sealed: string;
}

const sealedOriginal = z.strictObject({ subject: z.string(), signature: z.string().optional(), data: z.string() });
export type QuarantinedOriginal = { subject: string; signature?: string; data: Uint8Array };

function aad(recordId: string): Uint8Array {
  return new TextEncoder().encode(`phi-broker/quarantine/v1|${recordId}`);
}

export function quarantineRecordId(ingestSeq: number): string {
  return `q-${ingestSeq}`;
}

export function buildQuarantineRecord(
  input: QuarantineInput,
  error: BrokerError,
  facts: { sender?: string; type?: string; messageId?: string; at: number },
  key: Uint8Array,
): QuarantineRecord {
  const id = quarantineRecordId(input.ingestSeq);
  const original = JSON.stringify({
    subject: input.subject,
    ...(input.signature === undefined ? {} : { signature: input.signature }),
    data: Buffer.from(input.data).toString('base64'),
  });
  const sealed = Buffer.from(sealBlob(key, new TextEncoder().encode(original), aad(id))).toString('base64url');
  return {
    v: 1,
    id,
    code: error.code,
    message: error.message,
    ...(error.path === undefined ? {} : { path: error.path }),
    ...(facts.sender === undefined ? {} : { sender: facts.sender }),
    ...(facts.type === undefined ? {} : { type: facts.type }),
    ...(facts.messageId === undefined ? {} : { messageId: facts.messageId }),
    at: facts.at,
    sealed,
  };
}

/** For an operator with the broker's quarantine key: recovers the original input. */
export function openQuarantineRecord(record: QuarantineRecord, key: Uint8Array): QuarantinedOriginal {
  const plain = openBlob(key, Buffer.from(record.sealed, 'base64url'), aad(record.id));
  const parsed = sealedOriginal.parse(JSON.parse(new TextDecoder().decode(plain)));
  return {
    subject: parsed.subject,
    ...(parsed.signature === undefined ? {} : { signature: parsed.signature }),
    data: new Uint8Array(Buffer.from(parsed.data, 'base64')),
  };
}
