// Per-sender rejection rate limit (docs/broker.md "Storage limits"): a token bucket per sender holding `maxRejections`
// and refilling continuously over `windowMs`. Beyond it a rejection is throttled: answered E_SENDER_THROTTLED and
// counted into the sender's open summary, which closes `windowMs` after its first rejection and is then written as
// one quarantine record and one AuditEvent. Kept in one broker process's memory. Pure, with an injected clock.

export interface RejectionThrottleSettings {
  readonly maxRejections: number;
  readonly windowMs: number;
}

/** What a closed window of throttled rejections from one sender amounts to: counts and codes, never an input. */
export interface ThrottleSummary {
  readonly sender: string;
  /** When the first throttled rejection was counted, and when the window closed (ms since the epoch). */
  readonly since: number;
  readonly until: number;
  /** Ingest stream sequence of the first throttled rejection (the summary's quarantine record id). */
  readonly firstSeq: number;
  readonly count: number;
  /** Rejection code → how many of the window's rejections had it. */
  readonly codes: Readonly<Record<string, number>>;
  readonly bytes: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface OpenSummary {
  since: number;
  firstSeq: number;
  count: number;
  codes: Record<string, number>;
  bytes: number;
}

/** Senders whose buckets are tracked at most; the least recently charged are forgotten first (forgiving them). */
const MAX_SENDERS = 10_000;

export class RejectionThrottle {
  private readonly buckets = new Map<string, Bucket>();
  private readonly open = new Map<string, OpenSummary>();
  /** Summaries whose window ended when a new one for the same sender began, until due() hands them out. */
  private readonly closed: ThrottleSummary[] = [];

  constructor(
    private readonly settings: RejectionThrottleSettings,
    private readonly now: () => number,
  ) {}

  /** True, and one token taken, when `sender` may have one more rejection handled in full. */
  admit(sender: string): boolean {
    const { maxRejections, windowMs } = this.settings;
    const at = this.now();
    const b = this.buckets.get(sender) ?? { tokens: maxRejections, at };
    b.tokens = Math.min(maxRejections, b.tokens + (Math.max(0, at - b.at) * maxRejections) / windowMs);
    b.at = at;
    this.buckets.delete(sender);
    this.buckets.set(sender, b);
    if (this.buckets.size > MAX_SENDERS) this.buckets.delete(this.buckets.keys().next().value as string);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * Counts a throttled rejection into the sender's open summary. Returns true when it opened a new window (the
   * moment to raise the alert: once per window).
   */
  count(sender: string, code: string, seq: number, bytes: number): boolean {
    const at = this.now();
    let s = this.open.get(sender);
    if (s !== undefined && at - s.since >= this.settings.windowMs) {
      this.closed.push({ sender, ...s, until: at });
      s = undefined;
    }
    const opened = s === undefined;
    if (s === undefined) {
      s = { since: at, firstSeq: seq, count: 0, codes: {}, bytes: 0 };
      this.open.set(sender, s);
    }
    s.count += 1;
    s.codes[code] = (s.codes[code] ?? 0) + 1;
    s.bytes += bytes;
    return opened;
  }

  /** Removes and returns the summaries whose window has ended (all of them with `all`, e.g. at shutdown). */
  due(all = false): ThrottleSummary[] {
    const at = this.now();
    const out = this.closed.splice(0);
    for (const [sender, s] of this.open) {
      if (!all && at - s.since < this.settings.windowMs) continue;
      this.open.delete(sender);
      out.push({ sender, ...s, until: at });
    }
    return out;
  }

  /** Puts a summary that could not be written back, merged with any the sender opened since. */
  restore(summary: ThrottleSummary): void {
    const later = this.open.get(summary.sender);
    const codes: Record<string, number> = { ...summary.codes };
    if (later !== undefined) for (const [c, n] of Object.entries(later.codes)) codes[c] = (codes[c] ?? 0) + n;
    this.open.set(summary.sender, {
      since: summary.since,
      firstSeq: summary.firstSeq,
      count: summary.count + (later?.count ?? 0),
      codes,
      bytes: summary.bytes + (later?.bytes ?? 0),
    });
  }

  /** Senders with an open summary (throttled within their current window). */
  get throttled(): number {
    return this.open.size;
  }
}
