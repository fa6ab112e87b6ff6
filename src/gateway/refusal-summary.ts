// Token requests refused by the rate limit, audited without an audit flood (docs/partner-gateway.md "Rate limits"):
// per rate-limit key and refusal code, the first refusal of a window is recorded on its own and the window's later
// refusals are counted into one summary, recorded when the window ends. Kept in one gateway process's memory; pure,
// with an injected clock.

/** A closed window's later refusals for one key and code: how many, and when the window ran. */
export interface RefusalSummary {
  /** The rate-limit key (rate-limit.ts `rateKey`: client id and address digest, or the address digest alone). */
  readonly key: string;
  readonly code: string;
  /** The address the refusals came from (one per key: the key holds its digest). */
  readonly address: string;
  /** When the first and the last of the counted refusals came (ms since the epoch). */
  readonly first: number;
  readonly last: number;
  readonly count: number;
}

interface Window {
  readonly key: string;
  readonly code: string;
  readonly address: string;
  /** When the window opened (its first refusal). */
  readonly since: number;
  readonly windowMs: number;
  count: number;
  first: number;
  last: number;
}

/** Windows tracked at most; past it the oldest is closed early (its summary still recorded). */
const MAX_WINDOWS = 10_000;

export class RefusalSummaries {
  private readonly open = new Map<string, Window>();
  /** Summaries closed when a new window replaced them, until due() hands them out. */
  private readonly closed: RefusalSummary[] = [];

  constructor(private readonly now: () => number) {}

  /**
   * One refusal under `key` with `code`: `first` when it opens a window (record it on its own), `counted` when it
   * was counted into the open window's summary.
   */
  refuse(key: string, code: string, address: string, windowMs: number): 'first' | 'counted' {
    const at = this.now();
    const id = `${code} ${key}`;
    const w = this.open.get(id);
    if (w !== undefined && at - w.since < w.windowMs) {
      if (w.count === 0) w.first = at;
      w.count += 1;
      w.last = at;
      return 'counted';
    }
    if (w !== undefined) this.close(id);
    this.open.set(id, { key, code, address, since: at, windowMs, count: 0, first: at, last: at });
    if (this.open.size > MAX_WINDOWS) this.close(this.open.keys().next().value as string);
    return 'first';
  }

  /** Counts a refusal whose own record could not be stored into its key's summary (opening a window if none is). */
  recount(key: string, code: string, address: string, windowMs: number): void {
    const id = `${code} ${key}`;
    const at = this.now();
    const w = this.open.get(id);
    if (w === undefined) this.open.set(id, { key, code, address, since: at, windowMs, count: 1, first: at, last: at });
    else {
      if (w.count === 0) w.first = at;
      w.count += 1;
      w.last = at;
    }
  }

  /** Removes and returns the summaries of ended windows with a count (of every window with `all`, e.g. at stop). */
  due(all = false): RefusalSummary[] {
    const at = this.now();
    for (const [id, w] of this.open) if (all || at - w.since >= w.windowMs) this.close(id);
    return this.closed.splice(0);
  }

  /** Puts back a summary that could not be recorded: its count joins its key's open window, recorded with it. */
  restore(s: RefusalSummary, windowMs: number): void {
    const id = `${s.code} ${s.key}`;
    const w = this.open.get(id);
    if (w === undefined) this.open.set(id, { ...s, since: s.first, windowMs });
    else {
      w.first = w.count === 0 ? s.first : Math.min(w.first, s.first);
      w.last = w.count === 0 ? s.last : Math.max(w.last, s.last);
      w.count += s.count;
    }
  }

  private close(id: string): void {
    const w = this.open.get(id);
    if (w === undefined) return;
    this.open.delete(id);
    if (w.count > 0)
      this.closed.push({ key: w.key, code: w.code, address: w.address, first: w.first, last: w.last, count: w.count });
  }
}
