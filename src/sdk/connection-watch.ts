// Whether the client's NATS connection is up, from the connection's status events (nats.js `status()`:
// `disconnect`, `reconnect`). Publishing waits for a live connection instead of handing bytes to nats.js while it
// reconnects: nats.js discards its outbound buffer when it dials again, so bytes written then may never be sent,
// or be sent after the publish has reported them not stored (docs/publishing.md).
import { Events, type NatsConnection, type Status } from 'nats';

export class ConnectionWatch {
  private up = true;
  private ended = false;
  private readonly onUp = new Set<() => void>();
  private readonly onDown = new Set<() => void>();
  private readonly status: AsyncIterable<Status> & { stop(): void };

  constructor(private readonly nc: NatsConnection) {
    this.status = nc.status() as AsyncIterable<Status> & { stop(): void };
    void this.watch();
    void nc.closed().then(() => this.end());
  }

  /** True while the connection is established (and not closed). */
  get connected(): boolean {
    return this.up && !this.ended && !this.nc.isClosed();
  }

  /** True once the connection is closed for good (nats.js gave up reconnecting, or it was closed). */
  get closed(): boolean {
    return this.ended || this.nc.isClosed();
  }

  /** Calls `fn` once, at the next reconnect or close; returns a function that cancels it. */
  nextUp(fn: () => void): () => void {
    this.onUp.add(fn);
    return () => this.onUp.delete(fn);
  }

  /** Calls `fn` once, at the next disconnect or close; returns a function that cancels it. */
  nextDown(fn: () => void): () => void {
    this.onDown.add(fn);
    return () => this.onDown.delete(fn);
  }

  stop(): void {
    this.status.stop();
    this.end();
  }

  private async watch(): Promise<void> {
    for await (const s of this.status) {
      if (s.type === Events.Disconnect) {
        this.up = false;
        fire(this.onDown);
      } else if (s.type === Events.Reconnect) {
        this.up = true;
        fire(this.onUp);
      }
    }
  }

  private end(): void {
    this.ended = true;
    fire(this.onDown);
    fire(this.onUp);
  }
}

function fire(set: Set<() => void>): void {
  const all = [...set];
  set.clear();
  for (const fn of all) fn();
}
