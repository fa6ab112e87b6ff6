// JetStream acknowledgements (`+ACK` to a delivery's reply subject, NATS ADR-15) taken over one turn of the
// event loop and written together. nats.js buffers outgoing protocol and writes it at the end of the current
// microtask queue; a consume loop hands deliveries over one `await` apart, so acking each as its handler
// settles meant one socket write per delivery (~10 % of a subscriber's CPU, the kernel's write path). Acks
// queued here go out at `setImmediate`, after every delivery already received has been handled: one write per
// connection per turn. Each ack is still sent only after its handler succeeded; `flush()` sends what is
// queued at once (stop() flushes before its round trip, so "stopped" still means "acknowledged").
import type { JsMsg } from 'nats';

export class AckBatch {
  private queue: JsMsg[] = [];
  private scheduled = false;
  private readonly flushLater = (): void => {
    this.scheduled = false;
    this.flush();
  };

  /** `onError` gets an ack the connection refused (e.g. closed): the delivery is redelivered after ack_wait. */
  constructor(private readonly onError: (err: unknown) => void) {}

  /** Acknowledges `m` before the event loop next waits for I/O. */
  ack(m: JsMsg): void {
    this.queue.push(m);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushLater);
    }
  }

  /** Sends every queued ack now. */
  flush(): void {
    const queued = this.queue;
    if (queued.length === 0) return;
    this.queue = [];
    for (const m of queued) {
      try {
        m.ack();
      } catch (err) {
        this.onError(err);
      }
    }
  }

  get pending(): number {
    return this.queue.length;
  }
}
