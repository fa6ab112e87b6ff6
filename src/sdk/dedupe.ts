// A bounded set of recently seen message ids: the subscriber-side half of "at-least-once delivery,
// duplicates suppressed by message id". JetStream de-duplicates re-publishes inside its duplicate
// window; this catches redeliveries of already-handled messages (e.g. an ack lost in a reconnect).
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity = 100_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new TypeError('capacity must be a positive integer');
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Records the id; evicts the oldest when full. */
  add(id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
  }

  get size(): number {
    return this.ids.size;
  }
}
