// JetStream publishes with their acknowledgements awaited, for the broker's hot path (deliveries,
// disclosure records, receipts, the replay-cache claim: several per ingest message). The protocol is
// JetStream's (NATS ADR-1 / the JetStream wire API): a core NATS publish with a reply subject, headers such as
// Nats-Msg-Id (de-duplication, ADR-8's Nats-Expected-Last-Subject-Sequence for compare-and-set); the server
// answers on the reply subject with a PubAck JSON `{stream, seq, duplicate?}` or `{error: {code, err_code,
// description}}`, or a status-only 503 message when no stream listens (no responders).
//
// nats.js `js.publish` does the same through its generic request machinery: per publish a request object, a
// timer, a deferred, a PubAck parse through a codec — and, on every successful completion, a NatsError built
// (stack trace included) only to reject a promise nobody awaits (request.js `cancel()`). Here one wildcard
// subscription under the connection's inbox prefix takes every reply, a token in the reply subject finds the
// waiting publish, and one sweep timer times out the ones left unanswered. Errors carry the codes nats.js
// gives them (TIMEOUT, 503, CONNECTION_CLOSED, PERMISSIONS_VIOLATION, and for an API error its code with
// `api_error`). A publish resolves only on the server's positive acknowledgement.
import {
  createInbox,
  ErrorCode,
  headers as natsHeaders,
  NatsError,
  type ConnectionOptions,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type PubAck,
  type Status,
  type Subscription,
} from 'nats';

export interface AckedPublishOptions {
  /** Nats-Msg-Id: the stream drops a second message with this id inside its duplicate window. */
  readonly msgID?: string;
  readonly headers?: MsgHdrs;
}

interface Waiting {
  readonly subject: string;
  readonly sentAt: number;
  resolve(ack: PubAck): void;
  reject(err: Error): void;
}

/** The same default nats.js uses for JetStream requests. */
const DEFAULT_TIMEOUT_MS = 5_000;

export class AckedPublisher {
  private readonly waiting = new Map<string, Waiting>();
  private sub: Subscription | undefined;
  private prefix = '';
  private next = 0;
  private readonly sweeper: ReturnType<typeof setInterval>;
  private closedError: Error | undefined;
  /** The connection's status events, watched for publish permission errors; stopped by close(). */
  private readonly status: AsyncIterable<Status> & { stop(): void };

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(Math.floor(timeoutMs / 10), 10));
    this.sweeper.unref();
    // Neither rejects: nats.js resolves closed() (with the error, if any) and ends the status iterator without
    // one when the connection closes; close() and the loop's body do not throw.
    this.status = nc.status() as AsyncIterable<Status> & { stop(): void };
    void nc.closed().then(() => this.close());
    void this.watchPermissions();
  }

  /** Publishes `data` to `subject` and resolves with the stream's acknowledgement. */
  publish(subject: string, data: Uint8Array, opts: AckedPublishOptions = {}): Promise<PubAck> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    let headers = opts.headers;
    if (opts.msgID !== undefined) {
      headers ??= natsHeaders();
      headers.set('Nats-Msg-Id', opts.msgID);
    }
    return new Promise<PubAck>((resolve, reject) => {
      const token = (this.next++).toString(36);
      try {
        const reply = this.inbox() + token;
        this.waiting.set(token, { subject, sentAt: Date.now(), resolve, reject });
        this.nc.publish(subject, data, headers === undefined ? { reply } : { reply, headers });
      } catch (err) {
        this.waiting.delete(token);
        reject(err as Error);
      }
    });
  }

  /**
   * A JetStream KV compare-and-set (NATS ADR-8): the value published to `$KV.<bucket>.<key>` with
   * Nats-Expected-Last-Subject-Sequence `revision` — 0 creates a key that has no entry; a tombstone's revision
   * writes on top of a delete. Resolves with the new revision; a stale revision fails with the server's
   * "wrong last sequence" (api_error.err_code 10071), as nats.js `kv.create`/`kv.update` do.
   */
  async kvCompareAndSet(bucket: string, key: string, value: Uint8Array, revision: number): Promise<number> {
    const h = natsHeaders();
    h.set('Nats-Expected-Last-Subject-Sequence', String(revision));
    return (await this.publish(`$KV.${bucket}.${key}`, value, { headers: h })).seq;
  }

  /**
   * Rejects every waiting publish; later publishes reject at once. Leaves the connection open, with nothing of
   * this publisher left on it (the SDK's client closes its publisher on a connection its caller keeps).
   */
  close(): void {
    clearInterval(this.sweeper);
    this.status.stop();
    this.closedError ??= NatsError.errorForCode(ErrorCode.ConnectionClosed);
    this.failAll(this.closedError);
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  /** The reply subject prefix, subscribing on first use (again after a refused subscription). */
  private inbox(): string {
    if (this.sub === undefined) {
      // The connection's own inbox prefix: under mTLS an identity may subscribe only below it.
      const options = (this.nc as unknown as { options?: ConnectionOptions }).options;
      this.prefix = `${createInbox(options?.inboxPrefix)}.`;
      const sub = this.nc.subscribe(`${this.prefix}*`, { callback: (err, msg) => this.onReply(sub, err, msg) });
      this.sub = sub;
    }
    return this.prefix;
  }

  private onReply(sub: Subscription, err: NatsError | null, msg: Msg): void {
    if (err !== null) {
      // The reply subscription itself failed (e.g. refused by permissions): nothing waiting can be answered.
      if (this.sub === sub) this.sub = undefined;
      this.failAll(err);
      return;
    }
    const token = msg.subject.slice(this.prefix.length);
    const w = this.waiting.get(token);
    if (w === undefined) return; // timed out already
    this.waiting.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      w.reject(NatsError.errorForCode(ErrorCode.NoResponders));
      return;
    }
    let ack: {
      stream?: string;
      seq?: number;
      duplicate?: boolean;
      domain?: string;
      error?: { code: number; err_code?: number; description?: string };
    };
    try {
      ack = msg.json();
    } catch {
      w.reject(NatsError.errorForCode(ErrorCode.JetStreamInvalidAck));
      return;
    }
    if (ack.error !== undefined) {
      // As nats.js reports a JetStream API error: the code as a string, the server's error in api_error.
      const e = new NatsError(ack.error.description ?? 'JetStream API error', String(ack.error.code));
      e.api_error = {
        code: ack.error.code,
        err_code: ack.error.err_code ?? 0,
        description: ack.error.description ?? '',
      };
      w.reject(e);
      return;
    }
    if (typeof ack.stream !== 'string' || ack.stream === '' || typeof ack.seq !== 'number') {
      w.reject(NatsError.errorForCode(ErrorCode.JetStreamInvalidAck));
      return;
    }
    w.resolve({ stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true, domain: ack.domain ?? '' });
  }

  /** Publishes unanswered after timeoutMs fail with TIMEOUT (oldest first: the map keeps sending order). */
  private sweep(): void {
    const limit = Date.now() - this.timeoutMs;
    for (const [token, w] of this.waiting) {
      if (w.sentAt > limit) break;
      this.waiting.delete(token);
      w.reject(NatsError.errorForCode(ErrorCode.Timeout));
    }
  }

  private failAll(err: Error): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.reject(err);
  }

  /** A publish the server refuses for permissions fails that publish (the oldest waiting on its subject). */
  private async watchPermissions(): Promise<void> {
    for await (const s of this.status) {
      const ctx = (s as { permissionContext?: { operation?: string; subject?: string } }).permissionContext;
      if (ctx?.operation !== 'publish') continue;
      for (const [token, w] of this.waiting) {
        if (w.subject !== ctx.subject) continue;
        this.waiting.delete(token);
        w.reject(new NatsError(`permissions violation for publish to ${ctx.subject}`, ErrorCode.PermissionsViolation));
        break;
      }
    }
  }
}
