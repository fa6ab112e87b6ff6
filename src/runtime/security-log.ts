// `up` follows nats-server's log and records refused clients as aggregated Security Alert AuditEvents (45 CFR
// 164.308(a)(6)), on its own timer, never on the message path (docs/audit.md, "Security incidents").
import type { AuditTrail } from '../audit/trail.js';
import { ALERT_RULE_NAMES } from '../audit/alerts.js';
import type { SecurityIncidentFact } from '../audit/facts.js';
import { IncidentWindows } from '../audit/incidents.js';
import type { BrokerMetrics } from '../broker/metrics.js';
import type { Catalog } from '../catalog/types.js';
import { errorFields, type Logger } from '../log/log.js';
import { parseSecurityLogLine, UNRECOGNISED } from '../nats/server-log.js';
import { subjectGrammar } from '../wire/names.js';
import { LogFollower, type LogStart } from './log-follower.js';
import { rotatedLogs } from './nats-log.js';

export interface SecurityLogOptions {
  readonly file: string;
  /** Where the file stood before the server started (src/runtime/log-follower.ts): lines before it are not this run's. */
  readonly from?: LogStart;
  readonly catalog: Catalog;
  readonly trail: AuditTrail;
  readonly metrics: BrokerMetrics;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** How often the file is read (default 250 ms). */
  readonly pollMs?: number;
  readonly now?: () => number;
}

export interface SecurityLog {
  /** Reads what is left, records every open aggregate and stops. */
  stop(): Promise<void>;
}

/** Aggregates kept for a retry while the audit trail cannot take them; older ones are dropped, and logged. */
const MAX_UNRECORDED = 1000;

export function startSecurityLog(opts: SecurityLogOptions): SecurityLog {
  const { logger, metrics, trail } = opts;
  const now = opts.now ?? Date.now;
  const windows = new IncidentWindows({
    intervalMs: opts.intervalMs,
    now,
    isPhiBrokerSubject: subjectGrammar({
      services: new Set(opts.catalog.services.keys()),
      types: new Set(opts.catalog.topics.keys()),
      instances: new Set([trail.instanceId]),
      alertRules: new Set(ALERT_RULE_NAMES),
    }),
  });
  let unrecognised = 0;
  const follower = new LogFollower({
    file: opts.file,
    rotated: () => rotatedLogs(opts.file),
    ...(opts.from === undefined ? {} : { from: opts.from }),
    onLine(line) {
      let e: ReturnType<typeof parseSecurityLogLine>;
      try {
        e = parseSecurityLogLine(line);
      } catch {
        e = UNRECOGNISED;
      }
      if (e === undefined) return;
      if (e === UNRECOGNISED) {
        unrecognised += 1;
        metrics.securityIncidents.inc({ kind: 'unrecognised' });
        return;
      }
      metrics.securityIncidents.inc({ kind: e.kind });
      windows.add(e);
    },
    onOverlong() {
      unrecognised += 1;
      metrics.securityIncidents.inc({ kind: 'unrecognised' });
    },
  });
  let unrecorded: SecurityIncidentFact[] = [];
  let recording: Promise<void> = Promise.resolve();

  const record = (facts: SecurityIncidentFact[]): Promise<void> => {
    const batch = [...unrecorded, ...facts];
    unrecorded = [];
    if (batch.length === 0) return Promise.resolve();
    for (const f of batch)
      logger.warn(
        { event: 'security.incident', incident: f.incident, identity: f.identity, address: f.address, count: f.count },
        'nats-server refused a client',
      );
    return trail.record(batch).catch((err: unknown) => {
      // Kept for the next tick: the aggregates are the only record of these lines.
      unrecorded = [...batch, ...unrecorded];
      const dropped = unrecorded.length - MAX_UNRECORDED;
      if (dropped > 0) {
        logger.error(
          { event: 'security.unrecorded.dropped', aggregates: dropped, lines: sum(unrecorded.slice(0, dropped)) },
          'security incidents dropped: the audit trail is unavailable',
        );
        unrecorded = unrecorded.slice(dropped);
      }
      logger.error({ event: 'security.unrecorded', aggregates: batch.length, ...errorFields(err) }, 'not recorded yet');
    });
  };

  const tick = (all: boolean): void => {
    try {
      follower.poll();
    } catch (err) {
      logger.warn(
        { event: 'security.log.unreadable', file: opts.file, ...errorFields(err) },
        'nats-server log not read',
      );
    }
    if (unrecognised > 0) {
      logger.warn({ event: 'security.log.unrecognised', lines: unrecognised }, 'nats-server security lines not parsed');
      unrecognised = 0;
    }
    const facts = windows.close(all);
    if (facts.length > 0 || unrecorded.length > 0) recording = recording.then(() => record(facts));
  };

  const timer = setInterval(() => tick(false), opts.pollMs ?? 250);
  timer.unref();
  logger.info(
    { event: 'security.log.following', file: opts.file },
    'following the nats-server log for security incidents',
  );

  return {
    async stop() {
      clearInterval(timer);
      tick(true);
      await recording;
      follower.close();
    },
  };
}

function sum(facts: readonly SecurityIncidentFact[]): number {
  return facts.reduce((n, f) => n + f.count, 0);
}
