// Readiness as a set of named conditions (the Kubernetes liveness/readiness probe model): each part of the broker
// that can make it unfit to take messages owns one condition and sets it; the broker is ready only when every
// registered condition holds. Reasons are fixed phrases, stream names and error codes, never a value from a message.
// docs/health-and-metrics.md lists the conditions.

/** One condition as /readyz reports it. */
export interface ConditionState {
  readonly ok: boolean;
  /** Why it fails (or last failed): a fixed phrase, a stream name, an error code. */
  readonly reason?: string;
  /** When it last changed (ms since epoch). */
  readonly sinceMs: number;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly conditions: Readonly<Record<string, ConditionState>>;
  /** The names of the conditions that fail, sorted. */
  readonly failing: readonly string[];
}

const CONDITION_NAME = /^[a-z][a-z0-9-]{0,39}$/;

export class Health {
  private readonly conditions = new Map<string, ConditionState>();
  private readonly listeners = new Set<(name: string, state: ConditionState) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Registers or updates condition `name`. A condition registered as failing keeps the broker not ready until its
   * owner sets it ok; listeners hear only changes of `ok`.
   */
  setCondition(name: string, ok: boolean, reason?: string): void {
    if (!CONDITION_NAME.test(name))
      throw new TypeError(`condition name ${JSON.stringify(name)}: lower-case, digits, hyphens`);
    const before = this.conditions.get(name);
    const state: ConditionState = {
      ok,
      ...(reason === undefined ? {} : { reason }),
      sinceMs: before !== undefined && before.ok === ok ? before.sinceMs : this.now(),
    };
    this.conditions.set(name, state);
    if (before?.ok !== ok) for (const l of this.listeners) l(name, state);
  }

  condition(name: string): ConditionState | undefined {
    return this.conditions.get(name);
  }

  /** Ready: at least one condition registered and all of them ok. */
  get ready(): boolean {
    if (this.conditions.size === 0) return false;
    for (const c of this.conditions.values()) if (!c.ok) return false;
    return true;
  }

  report(): ReadinessReport {
    const conditions = Object.fromEntries([...this.conditions.entries()].sort(([a], [b]) => a.localeCompare(b)));
    const failing = Object.entries(conditions)
      .filter(([, c]) => !c.ok)
      .map(([name]) => name);
    return { ready: this.ready, conditions, failing };
  }

  /** Called on every change of a condition's `ok`; returns the unsubscribe function. */
  onChange(listener: (name: string, state: ConditionState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The conditions the broker itself registers (docs/health-and-metrics.md); other components add their own. */
export const CONDITIONS = {
  /** The broker takes messages from PHI_INGEST (false before start and after stop). */
  consuming: 'consuming',
  /** JetStream answers this broker's account-info request. */
  jetstream: 'jetstream',
  /** The broker's last append to its audit chain was stored, and PHI_AUDIT exists. */
  audit: 'audit',
  /** PHI_INGEST, PHI_DELIVER, PHI_QUARANTINE, PHI_RECEIPTS and PHI_DISCLOSURES have the configured settings. */
  streams: 'streams',
} as const;
