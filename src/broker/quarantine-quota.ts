// Per-sender quarantine quota: two token buckets per sender (bytes and inputs), each holding one window's allowance
// and refilling continuously over the window. Kept in one broker process's memory, so N brokers admit up to N × the
// quota between them (docs/broker.md "Storage limits"). Pure, with an injected clock.

export interface QuarantineQuotaSettings {
  readonly maxBytes: number;
  readonly maxMessages: number;
  readonly windowMs: number;
}

interface Bucket {
  bytes: number;
  messages: number;
  at: number;
}

/** Senders tracked at most; the fullest (least recently charged) are forgotten first, which only forgives them. */
const MAX_SENDERS = 10_000;

export class QuarantineQuota {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly settings: QuarantineQuotaSettings,
    private readonly now: () => number,
  ) {}

  /** True, and the input charged, when `sender` may have `size` more bytes quarantined whole; false when over. */
  take(sender: string, size: number): boolean {
    const { maxBytes, maxMessages, windowMs } = this.settings;
    const at = this.now();
    const b = this.buckets.get(sender) ?? { bytes: maxBytes, messages: maxMessages, at };
    const elapsed = Math.max(0, at - b.at);
    b.bytes = Math.min(maxBytes, b.bytes + (elapsed * maxBytes) / windowMs);
    b.messages = Math.min(maxMessages, b.messages + (elapsed * maxMessages) / windowMs);
    b.at = at;
    this.buckets.delete(sender);
    this.buckets.set(sender, b);
    if (this.buckets.size > MAX_SENDERS) this.buckets.delete(this.buckets.keys().next().value as string);
    if (b.messages < 1 || b.bytes < size) return false;
    b.messages -= 1;
    b.bytes -= size;
    return true;
  }
}
