// The broker's answer to a publisher: accepted (with the number of deliveries) or rejected (stable code,
// message naming element paths, never values). Signed by the broker so a publisher can trust it; kept in
// PHI_RECEIPTS for a day so a publisher that timed out can look it up. `hash` is the SHA-256 of the exact
// bytes the verdict is about: a publisher matches id AND hash, so a forged message that reuses another's
// id (and fails verification) cannot make the genuine message look rejected.
import { z } from 'zod';
import { BrokerError, isBrokerErrorCode, type BrokerErrorCode } from './errors.js';
import { decodeJsonBytes } from './decode-json.js';

export type Receipt =
  | {
      readonly v: 1;
      readonly id: string;
      readonly hash: string;
      readonly status: 'accepted';
      readonly deliveries: number;
      readonly at: number;
    }
  | {
      readonly v: 1;
      readonly id: string;
      readonly hash: string;
      readonly status: 'rejected';
      readonly code: BrokerErrorCode;
      readonly message: string;
      readonly path?: string;
      readonly at: number;
    };

const HASH_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const HASH = z.string().regex(HASH_PATTERN);

const receiptSchema = z.union([
  z.strictObject({
    v: z.literal(1),
    id: z.string(),
    hash: HASH,
    status: z.literal('accepted'),
    deliveries: z.number().int().min(0),
    at: z.number(),
  }),
  z.strictObject({
    v: z.literal(1),
    id: z.string(),
    hash: HASH,
    status: z.literal('rejected'),
    code: z.string().refine(isBrokerErrorCode),
    message: z.string(),
    path: z.string().optional(),
    at: z.number(),
  }),
]);

export function acceptedReceipt(id: string, hash: string, deliveries: number, at: number): Receipt {
  return { v: 1, id, hash, status: 'accepted', deliveries, at };
}

export function rejectedReceipt(id: string, hash: string, error: BrokerError, at: number): Receipt {
  const base = { v: 1 as const, id, hash, status: 'rejected' as const, code: error.code, message: error.message, at };
  return error.path === undefined ? base : { ...base, path: error.path };
}

const utf8 = new TextEncoder();

export function encodeReceipt(r: Receipt): Uint8Array {
  return utf8.encode(JSON.stringify(r));
}

/**
 * The receipt a publisher gets for nearly every message, checked without zod (a publisher decodes one per
 * publish): exactly the six fields of `accepted`, each as the schema above requires. Anything else — every
 * rejection, every malformed receipt — goes through the schema, so the verdicts are the schema's.
 */
function acceptedReceiptOf(json: unknown): Receipt | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const r = json as Record<string, unknown>;
  const { v, id, hash, status, deliveries, at } = r;
  if (
    v !== 1 ||
    status !== 'accepted' ||
    typeof id !== 'string' ||
    typeof hash !== 'string' ||
    !HASH_PATTERN.test(hash)
  )
    return undefined;
  // zod's .int() is a safe integer (±2^53 − 1), not merely Number.isInteger (1e300 is an integer).
  if (
    typeof deliveries !== 'number' ||
    !Number.isSafeInteger(deliveries) ||
    deliveries < 0 ||
    typeof at !== 'number' ||
    !Number.isFinite(at)
  )
    return undefined;
  if (Object.keys(r).length !== 6) return undefined;
  return { v, id, hash, status, deliveries, at };
}

function receiptJson(bytes: Uint8Array): unknown {
  return decodeJsonBytes(bytes, {
    what: 'receipt',
    malformedCode: 'E_ENVELOPE_INVALID',
    message: 'not a broker receipt',
  });
}

function bySchema(json: unknown): Receipt {
  const parsed = receiptSchema.safeParse(json);
  if (!parsed.success) throw new BrokerError('E_ENVELOPE_INVALID', 'not a broker receipt');
  return parsed.data as Receipt;
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  const json = receiptJson(bytes);
  return acceptedReceiptOf(json) ?? bySchema(json);
}

/** The reference decoder, the schema alone: decodeReceipt's fast path must agree with it (property-tested). */
export function decodeReceiptBySchema(bytes: Uint8Array): Receipt {
  return bySchema(receiptJson(bytes));
}
