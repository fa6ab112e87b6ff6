// Rate-limit counters shared by every gateway instance: a @fastify/rate-limit store whose counts live in the KV bucket
// phi_gateway_rate. Each key holds one fixed window (its start and count), incremented by compare-and-set (NATS ADR-8,
// src/nats/kv-cas.ts); the bucket's TTL outlasts the longest window. When a count cannot be taken the store fails
// closed with E_RATE_LIMIT_UNAVAILABLE (503 + Retry-After). docs/partner-gateway.md (Rate limits).
import { createHash } from 'node:crypto';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { KV } from 'nats';
import type { Logger } from '../log/log.js';
import { kvCompareAndSet, type KvCodec } from '../nats/kv-cas.js';
import { BrokerError } from '../wire/errors.js';
import { KV_BUCKETS } from '../wire/names.js';

/** One window of one key: when it started (ms since the epoch, the counting gateway's clock) and its requests. */
interface Window {
  readonly v: 1;
  readonly start: number;
  readonly count: number;
}

/** What @fastify/rate-limit reads back from a store: the count including this request, and ms left in the window. */
export interface RateCount {
  readonly current: number;
  readonly ttl: number;
}

/** How long one KV operation of a count may take before the gateway fails closed (NATS down answers nothing). */
export const RATE_COUNT_TIMEOUT_MS = 2_000;

/** Seconds a partner is told to wait when the counters are unavailable (Retry-After). */
export const RATE_UNAVAILABLE_RETRY_SECONDS = 1;

/**
 * Compare-and-set rounds for one count: many requests of one client arrive at once on several gateways, each round
 * lets one of them write, and the backoff (at most 50 ms) spreads the others out.
 */
const CAS = { maxAttempts: 40, baseDelayMs: 2, maxDelayMs: 50, path: KV_BUCKETS.gatewayRate } as const;

const CODEC: KvCodec<Window> = {
  encode: (w) => new TextEncoder().encode(JSON.stringify(w)),
  decode: (bytes) => {
    const w = JSON.parse(new TextDecoder().decode(bytes)) as Partial<Window> | null;
    if (w?.v !== 1 || !Number.isSafeInteger(w.start) || !Number.isSafeInteger(w.count))
      throw new BrokerError('E_STORED_INVALID', `${KV_BUCKETS.gatewayRate}: a counter is not in the expected shape`, {
        path: KV_BUCKETS.gatewayRate,
      });
    return w as Window;
  },
};

const digest = (address: string): string => createHash('sha256').update(address, 'utf8').digest('base64url');

/**
 * The counter's KV key: per registered client and address together (so nobody spends a partner's budget by naming
 * it), or per address alone for a client the catalog does not name. The address is hashed: KV keys allow no `:`.
 */
export function rateKey(clientId: string | undefined, address: string): string {
  return clientId === undefined ? `address.${digest(address)}` : `client.${clientId}.${digest(address)}`;
}

/** The client id a key of rateKey counts for, if any. */
export function rateKeyClient(key: string): string | undefined {
  return key.startsWith('client.') ? key.split('.')[1] : undefined;
}

/** Thrown (as the request's error) when the count could not be taken: the gateway answers 503, never unlimited. */
export class RateLimitUnavailable extends Error {
  readonly statusCode = 503;
  readonly code = 'E_RATE_LIMIT_UNAVAILABLE';
  constructor() {
    super(`rate limit counters unavailable, retry in ${RATE_UNAVAILABLE_RETRY_SECONDS} seconds`);
  }
}

export class RateCounter {
  constructor(
    private readonly kv: KV,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  /**
   * Counts one request under `key` in its window of `windowMs`, which starts with the first request after the
   * previous one ended. Past `max + 1`, nothing more is written (the count stays `max + 1`), so floods cost one read each.
   */
  async count(key: string, windowMs: number, max: number): Promise<RateCount> {
    let now = this.now();
    try {
      const r = await kvCompareAndSet(
        this.kv,
        key,
        CODEC,
        (w): Window => {
          now = this.now();
          if (w === undefined || now >= w.start + windowMs) return { v: 1, start: now, count: 1 };
          return w.count > max ? w : { v: 1, start: w.start, count: w.count + 1 };
        },
        CAS,
      );
      const w = r.value as Window;
      // A start ahead of this gateway's clock (another gateway's skew) still leaves at most one window.
      const ttl = Math.min(windowMs, Math.max(1, w.start + windowMs - now));
      return { current: w.count, ttl };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.logger.warn(
        { event: 'gateway.rate.unavailable', code: typeof code === 'string' ? code : 'unknown' },
        'rate limit counters unavailable: refusing the request',
      );
      throw new RateLimitUnavailable();
    }
  }

  /** The store class @fastify/rate-limit instantiates; every route shares this counter (keys carry no route). */
  store(): FastifyRateLimitStoreCtor {
    const count = (key: string, windowMs: number, max: number): Promise<RateCount> => this.count(key, windowMs, max);
    class NatsKvStore implements FastifyRateLimitStore {
      incr(
        key: string,
        callback: (error: Error | null, result?: RateCount) => void,
        timeWindow: number,
        max: number,
      ): void {
        count(key, timeWindow, max).then(
          (r) => callback(null, r),
          (err: Error) => callback(err),
        );
      }
      child(): FastifyRateLimitStore {
        return this;
      }
    }
    return NatsKvStore;
  }
}
