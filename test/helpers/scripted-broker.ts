// Test harness: plays the broker's side of publish (src/sdk/client.ts ↔ src/broker/broker.ts) over a real NATS
// connection, so an SDK test decides each verdict — or sends a wrong one, or none. It subscribes (core NATS) to the
// ingest subjects: JetStream stores the message in PHI_INGEST AND core subscribers receive it. Each message seen is
// parsed, checked against its publisher's key and opened with the broker's keys; receipts go out as the broker sends
// them (JetStream publish on phi.receipt.<service>, Ed25519 detached signature in the Phi-Sig header, base64url).
import { headers as natsHeaders, type NatsConnection, type Subscription } from 'nats';
import { encodeReceipt, type Receipt } from '../../src/wire/receipt.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { publicRecords, type ServiceKeys } from '../../src/crypto/keys.js';
import { signDetached } from '../../src/crypto/sign.js';
import { openEnvelope, parseEnvelope, verifyEnvelope } from '../../src/envelope/open.js';
import { envelopeHash } from '../../src/envelope/provenance.js';
import type { Envelope } from '../../src/envelope/types.js';
import { HEADERS, subjects } from '../../src/wire/names.js';

/** One ingest message as the broker received it. */
export interface Ingested {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Phi-Sig header. */
  readonly sig: string | undefined;
  /** Nats-Msg-Id header (JetStream de-duplication). */
  readonly msgId: string | undefined;
  readonly env: Envelope;
  /** SHA-256 (base64url) of the exact bytes received: what a receipt about them carries. */
  readonly hash: string;
  /** The resource (or `{ raw }`), opened with the broker's keys; only after the publisher's signature verified. */
  readonly opened: unknown;
}

/** What the scripted broker does with one ingest message (nothing, by default). */
export type Answer = (m: Ingested) => void | Promise<void>;

/** A receipt as it goes on the wire: bytes and the Phi-Sig header (absent when `sig` is undefined). */
export interface WireReceipt {
  readonly bytes: Uint8Array;
  readonly sig: string | undefined;
}

export class ScriptedBroker {
  readonly seen: Ingested[] = [];
  /** Errors thrown while handling a message or by an answer; a test asserts it stays empty. */
  readonly failures: unknown[] = [];
  answer: Answer = () => undefined;
  private sub: Subscription | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly watchers = new Set<() => void>();
  private readonly ring: Keyring;

  /**
   * @param keys the broker's keys (it signs receipts and opens envelopes with them)
   * @param publisher the publishing service's keys (the broker verifies its signature before opening)
   */
  constructor(
    private readonly nc: NatsConnection,
    private readonly keys: ServiceKeys,
    private readonly publisher: ServiceKeys,
  ) {
    this.ring = new Keyring(keys, publicRecords(publisher));
  }

  /** Starts listening on phi.ingest.<publisher>.> (the subscription is registered on the server when this resolves). */
  async listen(): Promise<void> {
    if (this.sub !== undefined) return;
    this.sub = this.nc.subscribe(`phi.ingest.${this.publisher.service}.>`, {
      callback: (err, msg) => {
        if (err !== null) {
          this.failures.push(err);
          return;
        }
        try {
          const sig = msg.headers?.get(HEADERS.signature) || undefined;
          const env = parseEnvelope(msg.data);
          verifyEnvelope(msg.data, sig, this.publisher.sign.publicKey);
          const opened = openEnvelope(env, this.keys.service, (id) => this.ring.kekForId(id));
          const m: Ingested = {
            subject: msg.subject,
            data: msg.data,
            sig,
            msgId: msg.headers?.get(HEADERS.msgId) || undefined,
            env,
            hash: envelopeHash(msg.data),
            opened,
          };
          this.seen.push(m);
          this.track(Promise.resolve().then(() => this.answer(m)));
        } catch (e) {
          this.failures.push(e);
        }
        for (const w of [...this.watchers]) w();
      },
    });
    await this.nc.flush();
  }

  /** Stops listening (no core subscriber is left on the ingest subjects). */
  async stopListening(): Promise<void> {
    this.sub?.unsubscribe();
    this.sub = undefined;
    await this.nc.flush();
  }

  /** A receipt signed with `secretKey` (the broker's signing key unless another is given). */
  signed(r: Receipt, secretKey: Uint8Array = this.keys.sign.secretKey): WireReceipt {
    return this.signedBytes(encodeReceipt(r), secretKey);
  }

  /** Any bytes, signed as a receipt would be (for receipts the client must refuse to decode). */
  signedBytes(bytes: Uint8Array, secretKey: Uint8Array = this.keys.sign.secretKey): WireReceipt {
    return { bytes, sig: Buffer.from(signDetached(bytes, secretKey)).toString('base64url') };
  }

  /** Publishes a receipt the way the broker does (JetStream, stored in PHI_RECEIPTS) on phi.receipt.<service>. */
  async send(receipt: WireReceipt, service: string = this.publisher.service): Promise<void> {
    const h = natsHeaders();
    if (receipt.sig !== undefined) h.set(HEADERS.signature, receipt.sig);
    await this.nc.jetstream().publish(subjects.receipt(service), receipt.bytes, { headers: h });
  }

  /** Resolves once `count` ingest messages have been seen. */
  async waitForSeen(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.seen.length >= count) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.watchers.delete(check);
        reject(new Error(`scripted broker saw ${this.seen.length} of ${count} ingest messages`));
      }, timeoutMs);
      const check = (): void => {
        if (this.seen.length < count) return;
        clearTimeout(timer);
        this.watchers.delete(check);
        resolve();
      };
      this.watchers.add(check);
    });
  }

  /** Resolves when every answer started so far has finished (its receipts are on the server). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Forgets what was seen and answers nothing until told otherwise (between tests). */
  async reset(): Promise<void> {
    await this.settled();
    this.seen.length = 0;
    this.failures.length = 0;
    this.answer = () => undefined;
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((e: unknown) => void this.failures.push(e)).finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }
}
