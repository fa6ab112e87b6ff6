// Security incidents from nats-server's log, aggregated per kind and client per window so a flood of refusals is one
// fact with a count; subjects outside the catalog grammar become NOT_A_PHI_BROKER_SUBJECT. Pure (docs/audit.md).
import type { SecurityLogEvent, TlsRefusal } from '../nats/server-log.js';
import { NOT_A_PHI_BROKER_SUBJECT } from '../wire/names.js';
import type { SecurityIncidentFact } from './facts.js';

export interface IncidentWindowOptions {
  readonly intervalMs: number;
  /** Subjects written into the audit trail (the catalog's subject grammar). */
  readonly isPhiBrokerSubject: (subject: string) => boolean;
  readonly now: () => number;
  /** Distinct subjects listed per event; more are counted (default 5). */
  readonly maxSubjects?: number;
  /** Windows open at once (default 1,000); lines of further clients share one window per kind (`manyClients`). */
  readonly maxWindows?: number;
}

interface Window {
  readonly opened: number;
  readonly incident: SecurityLogEvent['kind'];
  readonly identity: string | undefined;
  readonly manyClients: boolean;
  address: string;
  count: number;
  last: number;
  readonly subjects: Set<string>;
  more: number;
  readonly refusals: Set<TlsRefusal>;
  unknownUser: boolean;
}

export class IncidentWindows {
  private readonly open = new Map<string, Window>();

  constructor(private readonly opts: IncidentWindowOptions) {}

  /** Lines counted in windows not yet closed. */
  get pending(): number {
    let n = 0;
    for (const w of this.open.values()) n += w.count;
    return n;
  }

  add(e: SecurityLogEvent): void {
    const at = this.opts.now();
    const client = e.identity === undefined ? `@${e.address}` : e.identity;
    let key = `${e.kind}|${client}`;
    let w = this.open.get(key);
    // A flood from many clients (a scan) must not grow the windows without bound: past the cap they share one.
    const many = w === undefined && this.open.size >= (this.opts.maxWindows ?? 1000);
    if (many) {
      key = `${e.kind}|*`;
      w = this.open.get(key);
    }
    if (w === undefined) {
      w = {
        opened: at,
        incident: e.kind,
        identity: many ? undefined : e.identity,
        manyClients: many,
        address: e.address,
        count: 0,
        last: at,
        subjects: new Set(),
        more: 0,
        refusals: new Set(),
        unknownUser: false,
      };
      this.open.set(key, w);
    }
    w.count += 1;
    w.last = at;
    w.address = e.address;
    if (e.subject !== undefined) {
      const s = this.opts.isPhiBrokerSubject(e.subject) ? e.subject : NOT_A_PHI_BROKER_SUBJECT;
      if (!w.subjects.has(s)) {
        if (w.subjects.size < (this.opts.maxSubjects ?? 5)) w.subjects.add(s);
        else w.more += 1; // a distinct subject not listed (approximate: repeats beyond the list are not told apart)
      }
    }
    if (e.refusal !== undefined) w.refusals.add(e.refusal);
    if (e.unknownUser === true) w.unknownUser = true;
  }

  /** One fact per window open for `intervalMs` or more (every window when `all`, e.g. at stop), oldest first. */
  close(all = false): SecurityIncidentFact[] {
    const at = this.opts.now();
    const out: SecurityIncidentFact[] = [];
    for (const [key, w] of this.open) {
      if (!all && at - w.opened < this.opts.intervalMs) continue;
      this.open.delete(key);
      out.push({
        kind: 'security-incident',
        incident: w.incident,
        ...(w.identity === undefined ? {} : { identity: w.identity }),
        ...(w.manyClients ? { manyClients: true as const } : {}),
        address: w.address,
        count: w.count,
        firstSeen: new Date(w.opened).toISOString(),
        lastSeen: new Date(w.last).toISOString(),
        ...(w.subjects.size === 0 ? {} : { subjects: [...w.subjects].sort() }),
        ...(w.more === 0 ? {} : { moreSubjects: w.more }),
        ...(w.refusals.size === 0 ? {} : { refusals: [...w.refusals].sort() }),
        ...(w.unknownUser ? { unknownUser: true as const } : {}),
      });
    }
    return out;
  }
}
