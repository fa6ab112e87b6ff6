// Idempotent inbound requests across every gateway instance: the first request with a key claims
// `<client id>.<SHA-256 of the key>` in the KV bucket phi_gateway_requests by an atomic create (NATS ADR-8
// compare-and-set on "no entry"), answers, and stores its answer at the revision it claimed; a retry with the same
// key and body gets that answer back, on any gateway. The stored answer holds status, headers and the
// OperationOutcome or response Bundle the gateway wrote — never the partner's resource.
import { createHash } from 'node:crypto';
import type { KV } from 'nats';
import { isWrongLastSequence } from '../nats/jetstream-errors.js';
import { InboundError } from './bearer.js';

export interface StoredAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: object;
}

interface Entry {
  readonly v: 1;
  readonly state: 'pending' | 'answered';
  /** When the request was claimed, ms since the epoch. */
  readonly at: number;
  /** SHA-256 of the request body: the same key with another body is another request. */
  readonly body: string;
  readonly answer?: StoredAnswer;
}

/** A claimed key: its KV key, the body hash and the revision to answer at. */
export interface Ticket {
  readonly kind: 'new';
  readonly key: string;
  readonly body: string;
  readonly revision: number;
}

export type Claim = Ticket | { readonly kind: 'replay'; readonly answer: StoredAnswer };

const encoder = new TextEncoder();
const encode = (e: Entry): Uint8Array => encoder.encode(JSON.stringify(e));

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64url');
}

export class RequestStore {
  /**
   * @param staleMs a claim older than this whose gateway never answered (it stopped mid-request) may be taken over:
   *   longer than any publish deadline, so the first gateway has given up on it by then.
   */
  constructor(
    private readonly kv: KV,
    private readonly staleMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Claims `key` (from `source`, a header or element name for errors) for `clientId` and this body, or returns the
   * answer stored for it. Throws E_PARTNER_IDEMPOTENCY: 422 for another body, 409 while another request holds it.
   */
  async claim(clientId: string, source: string, key: string, bodyText: string): Promise<Claim> {
    const k = `${clientId}.${sha256(`${source}\u0000${key}`)}`;
    const body = sha256(bodyText);
    const pending = (): Uint8Array => encode({ v: 1, state: 'pending', at: this.now(), body });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return { kind: 'new', key: k, body, revision: await this.kv.create(k, pending()) };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
      const entry = await this.kv.get(k);
      if (entry === null || entry.operation !== 'PUT') continue; // released meanwhile: claim it again
      const stored = decodeEntry(entry.value);
      if (stored === undefined || stored.body !== body)
        throw new InboundError(
          422,
          'conflict',
          'E_PARTNER_IDEMPOTENCY',
          source,
          'this key was used for another request body',
        );
      if (stored.state === 'answered' && stored.answer !== undefined) return { kind: 'replay', answer: stored.answer };
      if (this.now() - stored.at < this.staleMs)
        throw new InboundError(
          409,
          'conflict',
          'E_PARTNER_IDEMPOTENCY',
          source,
          'a request with this key is still being answered',
        );
      try {
        return { kind: 'new', key: k, body, revision: await this.kv.update(k, pending(), entry.revision) };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new InboundError(409, 'conflict', 'E_PARTNER_IDEMPOTENCY', source, 'this key is contended; retry');
  }

  /** Stores the answer at the claimed revision; false when another gateway took the claim over meanwhile. */
  async answer(ticket: Ticket, answer: StoredAnswer): Promise<boolean> {
    try {
      await this.kv.update(
        ticket.key,
        encode({ v: 1, state: 'answered', at: this.now(), body: ticket.body, answer }),
        ticket.revision,
      );
      return true;
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      return false;
    }
  }

  /** Gives the key up (nothing was stored in JetStream, so a retry must be able to publish). */
  async release(ticket: Ticket): Promise<void> {
    try {
      await this.kv.delete(ticket.key, { previousSeq: ticket.revision });
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
  }
}

function decodeEntry(bytes: Uint8Array): Entry | undefined {
  try {
    const e = JSON.parse(new TextDecoder().decode(bytes)) as Entry;
    return e.v === 1 && typeof e.body === 'string' && typeof e.at === 'number' ? e : undefined;
  } catch {
    return undefined;
  }
}
