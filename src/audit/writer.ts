// ChainWriter: the single writer of one broker instance's audit chain (`phi.audit.<instanceId>` in PHI_AUDIT).
// Group commit: whatever is appended while a record is being written goes into the next record, so one
// JetStream round trip persists many events under load, and each append resolves only once its record is
// stored (the broker acknowledges ingest after that). Every publish carries
// Nats-Expected-Last-Subject-Sequence (a JetStream publish expectation, sent as a header through the writer's own
// AckedPublisher): the server stores the record only if the chain's last record is the one this writer wrote, so
// a second writer on the same chain (a duplicate instance id, a forked process) is refused and detected instead of
// interleaving. Every `checkpointEvery` records or `checkpointMs` the writer appends
// an Ed25519-signed checkpoint of the chain head; on close a final one. Each stored checkpoint's head is then
// published to PHI_AUDIT_WITNESS (witness.ts), so a later cut of the chain shows against it. While PHI_AUDIT is
// missing every append fails (E_AUDIT_CHAIN, retried by the caller); once recreated the chain continues from its head.
// Records are v3 (the facts, rendered as AuditEvents on read: record.ts); `recordVersion: 2` writes facts as objects
// and `recordVersion: 1` AuditEvent JSON, for the tests that compare them and chains that mix them.
import { headers as natsHeaders, type JetStreamManager, type NatsConnection } from 'nats';
import { AckedPublisher } from '../nats/acked-publish.js';
import type { SigningKeyPair } from '../crypto/keypairs.js';
import { signDetached } from '../crypto/sign.js';
import { BrokerError } from '../wire/errors.js';
import type { Logger } from '../log/log.js';
import { STREAMS, subjects } from '../wire/names.js';
import {
  RECORD_VERSION,
  RECORD_VERSION_EVENTS,
  checkpointPayload,
  decodeRecord,
  encodeCheckpointRecord,
  encodeEventsRecord,
  encodeFactsBody,
  encodeFactsRecord,
  recordHash,
  type FactEntry,
  type FactsVersion,
  type RecordSource,
  type RecordVersion,
} from './record.js';
import { WITNESS_VERSION, encodeWitnessHead, type WitnessHead } from './witness.js';

export interface ChainWriterOptions {
  readonly nc: NatsConnection;
  readonly chain: string;
  /** The checkpoints' key, or a look-up of the current one (a broker's key follows a rotation; the checkpoint names its kid). */
  readonly signer: SigningKeyPair | (() => SigningKeyPair);
  /** A checkpoint after this many records. */
  readonly checkpointEvery: number;
  /** A checkpoint when this long has passed since the last one and records are unsealed. */
  readonly checkpointMs: number;
  /** Largest record; a batch is cut before it would exceed this. */
  readonly maxRecordBytes: number;
  readonly now: () => number;
  readonly logger: Logger;
  /** The writer's host and recorder, stored in each v2 record for its events' source. */
  readonly source?: RecordSource;
  /** 3 (default) or 2: facts (`appendFacts`); 1: AuditEvent JSON (`append`). */
  readonly recordVersion?: RecordVersion;
}

/** One append: AuditEvent JSON (v1) or facts (v2, v3), whichever the writer's version takes. */
interface Pending {
  readonly events: readonly string[];
  readonly facts: readonly FactEntry[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class ChainWriter {
  private pending: Pending[] = [];
  private draining: Promise<void> | undefined;
  private sinceCheckpoint = 0;
  private lastCheckpointAt: number;
  private failure: BrokerError | undefined;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly subject: string;

  private constructor(
    private readonly opts: ChainWriterOptions,
    /** Records and witness heads go out through it: one reply subscription, no nats.js request per record. */
    private readonly pub: AckedPublisher,
    private readonly jsm: JetStreamManager,
    /** The chain sequence and hash of the last record, and its stream sequence (0: the chain is empty). */
    private head: { seq: number; hash: string | null; streamSeq: number },
  ) {
    this.subject = subjects.audit(opts.chain);
    this.lastCheckpointAt = opts.now();
    this.timer = setInterval(
      () => {
        if (this.checkpointDue()) this.kick();
      },
      Math.max(opts.checkpointMs, 10),
    );
    this.timer.unref();
  }

  /** Opens the chain: continues it after its last stored record (a restart with the same instance id), or starts it. */
  static async open(opts: ChainWriterOptions): Promise<ChainWriter> {
    const jsm = await opts.nc.jetstreamManager();
    const writer = new ChainWriter(opts, new AckedPublisher(opts.nc), jsm, { seq: 0, hash: null, streamSeq: 0 });
    try {
      const last = await writer.lastStored();
      if (last !== undefined) {
        const record = decodeRecord(last.data);
        if (record === undefined || record.chain !== opts.chain) {
          throw new BrokerError(
            'E_AUDIT_CHAIN',
            `the last record on audit chain ${opts.chain} is not a record of that chain; refusing to continue it`,
          );
        }
        writer.head = { seq: record.seq, hash: recordHash(last.data), streamSeq: last.seq };
      }
    } catch (err) {
      clearInterval(writer.timer);
      writer.pub.close();
      throw err;
    }
    return writer;
  }

  get chainSeq(): number {
    return this.head.seq;
  }

  get recordVersion(): RecordVersion {
    return this.opts.recordVersion ?? RECORD_VERSION;
  }

  /** Appends facts (v2, v3); resolves once the record holding them is stored. */
  appendFacts(entries: readonly FactEntry[]): Promise<void> {
    if (this.recordVersion === RECORD_VERSION_EVENTS)
      return Promise.reject(new TypeError('this audit chain writer stores AuditEvent JSON (record v1)'));
    return this.enqueue([], entries, 0);
  }

  /** Appends AuditEvents, each already JSON (v1); resolves once the record holding them is stored. */
  append(eventsJson: readonly string[]): Promise<void> {
    if (this.recordVersion !== RECORD_VERSION_EVENTS)
      return Promise.reject(new TypeError(`this audit chain writer stores facts (record v${this.recordVersion})`));
    return this.enqueue(
      eventsJson,
      [],
      eventsJson.reduce((n, e) => n + e.length + 1, 0),
    );
  }

  private enqueue(events: readonly string[], facts: readonly FactEntry[], bytes: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed)
      return Promise.reject(new BrokerError('E_AUDIT_CHAIN', `audit chain ${this.opts.chain} is closed`));
    if (events.length === 0 && facts.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ events, facts, bytes, resolve, reject });
      this.kick();
    });
  }

  /** Waits for every pending append, then writes the final checkpoint and stops. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    while (this.draining !== undefined) await this.draining;
    try {
      if (this.failure === undefined) await this.writeCheckpoint(true);
    } finally {
      this.pub.close();
    }
  }

  private kick(): void {
    if (this.draining !== undefined) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.pending.length > 0) this.kick();
    });
  }

  private checkpointDue(): boolean {
    if (this.sinceCheckpoint === 0 || this.failure !== undefined) return false;
    return (
      this.sinceCheckpoint >= this.opts.checkpointEvery ||
      this.opts.now() - this.lastCheckpointAt >= this.opts.checkpointMs
    );
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0 || this.checkpointDue()) {
      if (this.failure !== undefined) {
        for (const p of this.pending.splice(0)) p.reject(this.failure);
        return;
      }
      if (this.checkpointDue()) {
        try {
          await this.writeCheckpoint(false);
        } catch (err) {
          // The records it would seal are stored; the next checkpoint seals them too.
          this.opts.logger.warn(
            { event: 'audit.checkpoint.failed', chain: this.opts.chain, code: (err as { code?: unknown }).code },
            'audit checkpoint not written; will retry',
          );
          if (this.pending.length === 0) return;
        }
        continue;
      }
      const batch = this.takeBatch();
      const at = this.opts.now();
      try {
        const v = this.recordVersion;
        const body = v === RECORD_VERSION_EVENTS ? undefined : this.factsBody(batch, at, v);
        await this.write((seq, prev) =>
          body === undefined
            ? encodeEventsRecord(
                this.opts.chain,
                seq,
                prev,
                at,
                batch.flatMap((p) => p.events),
              )
            : encodeFactsRecord(this.opts.chain, seq, prev, at, body, v as FactsVersion),
        );
        this.sinceCheckpoint += 1;
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
  }

  /**
   * The v2 or v3 body of the batch's facts; while it is larger than a record may be, the batch's later appends go back to
   * the front of the queue (for the next record) and the body is made again.
   */
  private factsBody(batch: Pending[], at: number, v: FactsVersion): string {
    const source = this.opts.source ?? {};
    for (;;) {
      const body = encodeFactsBody(
        at,
        source,
        batch.flatMap((p) => p.facts),
        v,
      );
      if (batch.length === 1 || Buffer.byteLength(body, 'utf8') <= this.opts.maxRecordBytes) return body;
      this.pending.unshift(...batch.splice(Math.ceil(batch.length / 2)));
    }
  }

  private takeBatch(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (n < this.pending.length) {
      const next = this.pending[n] as Pending;
      if (n > 0 && bytes + next.bytes > this.opts.maxRecordBytes) break;
      bytes += next.bytes;
      n += 1;
    }
    return this.pending.splice(0, n);
  }

  private async writeCheckpoint(final: boolean): Promise<void> {
    const { seq: head, hash } = this.head;
    if (head === 0) return;
    const { signer } = this.opts;
    const { kid, secretKey } = typeof signer === 'function' ? signer() : signer;
    const sig = Buffer.from(signDetached(checkpointPayload(this.opts.chain, head, hash), secretKey)).toString(
      'base64url',
    );
    const at = this.opts.now();
    await this.write((seq, prev) =>
      encodeCheckpointRecord(
        this.opts.chain,
        seq,
        prev,
        at,
        {
          head,
          kid,
          sig,
          ...(final ? { final: true as const } : {}),
        },
        this.recordVersion,
      ),
    );
    this.sinceCheckpoint = 0;
    this.lastCheckpointAt = this.opts.now();
    this.opts.logger.debug({ event: 'audit.checkpoint', chain: this.opts.chain, head, final }, 'audit checkpoint');
    await this.witness({
      v: WITNESS_VERSION,
      chain: this.opts.chain,
      head,
      hash: hash as string,
      at,
      kid,
      sig,
      ...(final ? { final: true as const } : {}),
    });
  }

  /**
   * Publishes a stored checkpoint's head to PHI_AUDIT_WITNESS (witness.ts). A failure is logged and not retried:
   * the witness then lags by one checkpoint, and the next one witnesses a later head, which implies this one.
   */
  private async witness(head: WitnessHead): Promise<void> {
    try {
      const h = natsHeaders();
      h.set('Nats-Expected-Stream', STREAMS.auditWitness);
      await this.pub.publish(subjects.witness(this.opts.chain), new TextEncoder().encode(encodeWitnessHead(head)), {
        headers: h,
      });
    } catch (err) {
      this.opts.logger.warn(
        {
          event: 'audit.witness.failed',
          chain: this.opts.chain,
          head: head.head,
          code: (err as { code?: unknown }).code,
        },
        'audit head not witnessed; the next checkpoint is',
      );
    }
  }

  /**
   * Stores the next record expecting this writer's head last; after a failure the chain's last record says whether it
   * was stored (lost ack), not stored (E_AUDIT_CHAIN, retried) or another writer appended (chain refused from now on).
   */
  private async write(build: (seq: number, prev: string | null) => Uint8Array): Promise<void> {
    const seq = this.head.seq + 1;
    const bytes = build(seq, this.head.hash);
    let streamSeq: number;
    try {
      // Only the subject-sequence expectation: a subject belongs to one stream (JetStream refuses overlapping subjects),
      // so the ack's stream name checks what a Nats-Expected-Stream header would, without storing it in every record.
      const h = natsHeaders();
      h.set('Nats-Expected-Last-Subject-Sequence', String(this.head.streamSeq));
      const ack = await this.pub.publish(this.subject, bytes, { headers: h });
      if (ack.stream !== STREAMS.audit)
        throw new BrokerError(
          'E_AUDIT_CHAIN',
          `audit record ${seq} of chain ${this.opts.chain} was stored by stream ${ack.stream}, not ${STREAMS.audit}`,
        );
      streamSeq = ack.seq;
    } catch (err) {
      const last = await this.lastStored().catch((e: unknown) => {
        if (e instanceof BrokerError) throw e; // PHI_AUDIT does not exist
        throw new BrokerError(
          'E_AUDIT_CHAIN',
          `JetStream did not confirm audit record ${seq} of chain ${this.opts.chain}`,
          { cause: err },
        );
      });
      if (last !== undefined && Buffer.compare(Buffer.from(last.data), Buffer.from(bytes)) === 0) {
        streamSeq = last.seq;
      } else if (last === undefined && this.head.streamSeq > 0) {
        // The chain's records are gone while PHI_AUDIT exists: the stream was deleted and created again. The chain
        // goes on in the new stream from this writer's head (seq and prev continue, so `audit verify` shows the
        // break where records were destroyed); the next write expects an empty chain.
        this.opts.logger.error(
          { event: 'audit.chain.lost', chain: this.opts.chain, seq: this.head.seq, code: 'E_AUDIT_CHAIN' },
          "the audit chain's earlier records are no longer in PHI_AUDIT (stream deleted and recreated); continuing the chain",
        );
        this.head = { ...this.head, streamSeq: 0 };
        throw new BrokerError(
          'E_AUDIT_CHAIN',
          `audit chain ${this.opts.chain} restarts in a recreated ${STREAMS.audit}; record ${seq} not stored yet`,
          { cause: err },
        );
      } else if ((last?.seq ?? 0) === this.head.streamSeq) {
        // Nothing was stored: the caller retries (the broker leaves its ingest message unacknowledged).
        throw new BrokerError(
          'E_AUDIT_CHAIN',
          `JetStream did not store audit record ${seq} of chain ${this.opts.chain}`,
          { cause: err },
        );
      } else {
        this.failure = new BrokerError(
          'E_AUDIT_CHAIN',
          `another writer appended to audit chain ${this.opts.chain} (two broker processes with one instanceId?); this broker writes no more audit records`,
        );
        this.opts.logger.error(
          { event: 'audit.chain.conflict', chain: this.opts.chain, seq, code: this.failure.code },
          'audit chain taken over by another writer',
        );
        throw this.failure;
      }
    }
    this.head = { seq, hash: recordHash(bytes), streamSeq };
  }

  private async lastStored(): Promise<{ seq: number; data: Uint8Array } | undefined> {
    try {
      const m = await this.jsm.streams.getMessage(STREAMS.audit, { last_by_subj: this.subject });
      return { seq: m.seq, data: m.data };
    } catch (err) {
      const e = err as { code?: unknown; api_error?: { err_code?: number } };
      // JetStream API errors 10059 "stream not found" (PHI_AUDIT is gone: nothing can be appended) and 10037 "no
      // message found" (the chain is empty).
      if (e.api_error?.err_code === 10059)
        throw new BrokerError(
          'E_AUDIT_CHAIN',
          `${STREAMS.audit} does not exist; audit chain ${this.opts.chain} waits for it`,
          {
            cause: err,
          },
        );
      if (e.code === '404' || e.api_error?.err_code === 10037) return undefined;
      throw err;
    }
  }
}
