// Resends one sealed message, same bytes and Nats-Msg-Id, until JetStream stores or refuses it or the deadline passes;
// de-duplication makes a resend never a second copy. At most `limit` in flight, then refused (docs/publishing.md).
import { ErrorCode, type MsgHdrs } from 'nats';
import type { Logger } from '../log/log.js';
import type { AckedPublisher } from '../nats/acked-publish.js';
import type { ConnectionWatch } from './connection-watch.js';

export interface StoreRequest {
  readonly id: string;
  readonly subject: string;
  readonly data: Uint8Array;
  /** Headers sent with every attempt (the signature); Nats-Msg-Id is set to `id`. */
  readonly headers: MsgHdrs;
  /** Epoch milliseconds after which no attempt is made. */
  readonly deadline: number;
  /** Resolves when storage is proven otherwise (the broker's receipt for these bytes): attempts stop. */
  readonly proven: Promise<void>;
}

export type StoreOutcome =
  | { readonly stored: true; readonly attempts: number }
  | {
      readonly stored: false;
      readonly reason: 'queue_full' | 'deadline' | 'refused' | 'closed';
      /** An attempt reached a connection and got no answer: JetStream may have stored it before failing. */
      readonly inDoubt: boolean;
      readonly attempts: number;
      readonly detail: string;
    };

/** Backoff between attempts: 50 ms doubling to 1 s, each drawn from its upper half (jitter spreads resends). */
const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 1_000;

function backoff(failures: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures, 10));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

type Failure =
  | { readonly kind: 'unanswered' | 'unavailable'; readonly why: string }
  | { readonly kind: 'refused' | 'closed'; readonly why: string };

/** What a failed attempt says about the message (error codes as nats.js and src/nats/acked-publish.ts give them). */
function classify(err: unknown): Failure {
  const e = err as { code?: unknown; api_error?: { code?: number; err_code?: number } } | null;
  const api = e?.api_error;
  if (api !== undefined && api !== null) {
    const why = `JetStream API error ${api.code ?? '?'}/${api.err_code ?? '?'}`;
    // 5xx: JetStream cannot take it now (no leader during an election, recovering after a restart).
    return (api.code ?? 0) >= 500 ? { kind: 'unavailable', why } : { kind: 'refused', why };
  }
  switch (e?.code) {
    case ErrorCode.NoResponders:
      return { kind: 'unavailable', why: 'no stream answered (no responders)' };
    case ErrorCode.Timeout:
      return { kind: 'unanswered', why: 'no acknowledgement in time' };
    case ErrorCode.PermissionsViolation:
      return { kind: 'refused', why: 'NATS refused the publish (permissions violation)' };
    case ErrorCode.ConnectionClosed:
      return { kind: 'closed', why: 'the NATS connection closed' };
    default:
      return { kind: 'unanswered', why: `NATS error ${typeof e?.code === 'string' ? e.code : 'without a code'}` };
  }
}

/** One timer-or-event wait at a time, which `fire` ends early. */
class Wake {
  private end: (() => void) | undefined;
  wait(ms: number, also?: (fire: () => void) => () => void): Promise<void> {
    return new Promise((resolve) => {
      let cancel: (() => void) | undefined;
      const done = (): void => {
        clearTimeout(timer);
        cancel?.();
        if (this.end === done) this.end = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.end = done;
      cancel = also?.(done);
    });
  }
  fire(): void {
    this.end?.();
  }
}

export class DurablePublisher {
  private held = 0;
  private closing = false;
  private readonly runs = new Set<Promise<StoreOutcome>>();
  /** Runs waiting between attempts (for a reconnect or a backoff): close() ends their wait. */
  private readonly idle = new Set<Wake>();

  constructor(
    private readonly acked: AckedPublisher,
    private readonly conn: ConnectionWatch,
    private readonly limit: number,
    private readonly logger?: Logger,
  ) {}

  /** Publishes held now: waiting for JetStream's acknowledgement. */
  get pending(): number {
    return this.held;
  }

  store(req: StoreRequest): Promise<StoreOutcome> {
    if (this.closing)
      return Promise.resolve(notStored('closed', false, 0, 'the client closed before the message was sent'));
    if (this.held >= this.limit) {
      const detail = `${this.limit} publishes are already waiting for JetStream (maxPendingPublishes); the message was not sent`;
      return Promise.resolve(notStored('queue_full', false, 0, detail));
    }
    this.held++;
    const run = this.run(req).finally(() => {
      this.held--;
      this.runs.delete(run);
    });
    this.runs.add(run);
    return run;
  }

  /**
   * Stops: runs between attempts end at once as not stored; an attempt on the wire is given its answer (an
   * acknowledgement, an error, or the acknowledgement timeout), so its outcome is exact. Resolves when all have ended.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const w of [...this.idle]) w.fire();
    await Promise.allSettled([...this.runs]);
  }

  private async run(req: StoreRequest): Promise<StoreOutcome> {
    const wake = new Wake();
    let proven = false;
    void req.proven.then(() => {
      proven = true;
      wake.fire();
    });
    let attempts = 0;
    let failures = 0;
    let inDoubt = false;
    let last = 'no attempt was made';
    const pause = async (ms: number, also?: (fire: () => void) => () => void): Promise<void> => {
      this.idle.add(wake);
      try {
        await wake.wait(ms, also);
      } finally {
        this.idle.delete(wake);
      }
    };
    for (;;) {
      if (proven) return { stored: true, attempts };
      const remaining = req.deadline - Date.now();
      if (this.closing)
        return notStored(
          'closed',
          inDoubt,
          attempts,
          `the client closed before JetStream acknowledged the message (${count(attempts)}; last: ${last})`,
        );
      if (this.conn.closed)
        return notStored(
          'closed',
          inDoubt,
          attempts,
          `the NATS connection closed before JetStream acknowledged the message (${count(attempts)}; last: ${last})`,
        );
      if (remaining <= 0)
        return notStored(
          'deadline',
          inDoubt,
          attempts,
          `JetStream did not acknowledge the message by the deadline (${count(attempts)}; last: ${last})`,
        );
      if (!this.conn.connected) {
        last = 'no connection to NATS';
        await pause(remaining, (fire) => this.conn.nextUp(fire));
        continue;
      }
      attempts++;
      const sent = this.acked.publish(req.subject, req.data, { msgID: req.id, headers: req.headers }).then(
        () => undefined,
        (err: unknown) => classify(err),
      );
      // Not ended by close(): an attempt on the wire gets its answer (bounded by the acknowledgement timeout).
      const cut = wake.wait(remaining, (fire) => this.conn.nextDown(fire)).then(() => 'cut' as const);
      const answer = await Promise.race([sent, cut]);
      wake.fire(); // ends whichever wait is left
      if (answer === undefined) return { stored: true, attempts };
      if (answer === 'cut') {
        if (proven) return { stored: true, attempts };
        // The deadline passed or the connection dropped with the attempt unanswered: it may have been stored.
        inDoubt = true;
        last = this.conn.connected
          ? 'no acknowledgement by the deadline'
          : 'the connection dropped before an acknowledgement';
        this.logger?.debug(
          { event: 'sdk.publish.retry', id: req.id, attempt: attempts, reason: last },
          'publish attempt unanswered',
        );
        continue;
      }
      last = answer.why;
      if (answer.kind === 'refused')
        return notStored('refused', inDoubt, attempts, `JetStream did not store the message: ${answer.why}`);
      if (answer.kind === 'closed') {
        // Conservative: the attempt may have been written before the connection closed.
        return notStored(
          'closed',
          true,
          attempts,
          `the NATS connection closed before JetStream acknowledged the message (${count(attempts)})`,
        );
      }
      if (answer.kind === 'unanswered') inDoubt = true;
      this.logger?.debug(
        { event: 'sdk.publish.retry', id: req.id, attempt: attempts, reason: answer.why },
        'publish attempt failed; sending again',
      );
      await pause(Math.min(backoff(failures++), req.deadline - Date.now()));
    }
  }
}

function count(attempts: number): string {
  return attempts === 1 ? '1 attempt' : `${attempts} attempts`;
}

function notStored(
  reason: 'queue_full' | 'deadline' | 'refused' | 'closed',
  inDoubt: boolean,
  attempts: number,
  detail: string,
): StoreOutcome {
  return { stored: false, reason, inDoubt, attempts, detail };
}
