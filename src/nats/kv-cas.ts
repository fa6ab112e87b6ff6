// Compare-and-set on a JetStream KV key (NATS ADR-8: `update(key, value, revision)` publishes with
// Nats-Expected-Last-Subject-Sequence): read, apply a pure update, write at the revision read. A write the
// server refuses as "wrong last sequence" is retried on a fresh read after an exponential backoff with full
// jitter, a bounded number of times, and then fails with E_KV_CONTENDED. See docs/broker.md#concurrent-writers.
import { setTimeout as delay } from 'node:timers/promises';
import type { KV } from 'nats';
import { BrokerError } from '../wire/errors.js';
import { isWrongLastSequence } from './jetstream-errors.js';

export interface CasRetryOptions {
  /** Rounds tried in all, the first included (default 10). */
  readonly maxAttempts?: number;
  /** The backoff cap before the first retry, ms; it doubles each retry (default 2). */
  readonly baseDelayMs?: number;
  /** The largest backoff cap, ms (default 200). */
  readonly maxDelayMs?: number;
  /** Uniform in [0, 1); injected by tests. */
  readonly random?: () => number;
  /** Names what is written in the E_KV_CONTENDED message and path (a bucket or field name, never a value). */
  readonly path: string;
}

export const CAS_DEFAULTS = { maxAttempts: 10, baseDelayMs: 2, maxDelayMs: 200 } as const;

/**
 * The wait before round `attempt` (2 = the first retry): uniform in [0, min(maxDelayMs, baseDelayMs · 2^(attempt-2))),
 * the "full jitter" backoff, so writers that collided once spread out instead of colliding again in step.
 */
export function casBackoffMs(attempt: number, opts: Omit<CasRetryOptions, 'path'> = {}): number {
  if (!Number.isInteger(attempt) || attempt < 2) throw new TypeError('casBackoffMs: attempt must be an integer ≥ 2');
  const base = opts.baseDelayMs ?? CAS_DEFAULTS.baseDelayMs;
  const cap = Math.min(opts.maxDelayMs ?? CAS_DEFAULTS.maxDelayMs, base * 2 ** (attempt - 2));
  return cap * (opts.random ?? Math.random)();
}

/**
 * Runs `round` until it settles other than with "wrong last sequence", backing off between rounds. `round` does
 * one read-apply-write and gets its 1-based attempt number. Other errors end the loop at once.
 */
export async function retryOnConflict<T>(round: (attempt: number) => Promise<T>, opts: CasRetryOptions): Promise<T> {
  const maxAttempts = opts.maxAttempts ?? CAS_DEFAULTS.maxAttempts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    throw new TypeError('retryOnConflict: maxAttempts must be a positive integer');
  let last: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) await delay(casBackoffMs(attempt, opts));
    try {
      return await round(attempt);
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      last = err;
    }
  }
  throw new BrokerError(
    'E_KV_CONTENDED',
    `${opts.path}: other writers changed it during each of ${maxAttempts} compare-and-set attempts`,
    { path: opts.path, cause: last },
  );
}

export interface KvCodec<T> {
  decode(bytes: Uint8Array): T;
  encode(value: T): Uint8Array;
}

export interface KvCasResult<T> {
  /** The value as stored after the call (undefined: the key has no value and `change` wrote none). */
  readonly value: T | undefined;
  /** Its revision (0: the key never had an entry). */
  readonly revision: number;
  /** False when `change` returned its input, so nothing was written. */
  readonly changed: boolean;
  /** Rounds it took (1: no conflict). */
  readonly attempts: number;
}

/**
 * Applies `change` to the value at `key` by compare-and-set. `change` is pure: it gets the current value
 * (undefined for no entry or a deleted one) and returns the next, or its input to write nothing; it may throw
 * (a coded refusal), which ends the loop. A deleted key is written on top of its delete marker's revision.
 */
export async function kvCompareAndSet<T>(
  kv: KV,
  key: string,
  codec: KvCodec<T>,
  change: (current: T | undefined) => T | undefined,
  opts: CasRetryOptions,
): Promise<KvCasResult<T>> {
  return retryOnConflict(async (attempt) => {
    const entry = await kv.get(key);
    const revision = entry?.revision ?? 0;
    const current = entry !== null && entry.operation === 'PUT' ? codec.decode(entry.value) : undefined;
    const next = change(current);
    if (next === undefined && current !== undefined)
      throw new TypeError('kvCompareAndSet: change returned no value for an existing one (a delete is not an update)');
    if (next === current || next === undefined) return { value: current, revision, changed: false, attempts: attempt };
    // nats.js `update` refuses revision 0; `create` is the same compare-and-set on "no entry yet".
    const bytes = codec.encode(next);
    const written = revision === 0 ? await kv.create(key, bytes) : await kv.update(key, bytes, revision);
    return { value: next, revision: written, changed: true, attempts: attempt };
  }, opts);
}
