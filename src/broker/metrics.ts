// The broker's Prometheus metrics (prom-client; text exposition format 0.0.4), in a registry of their own per
// broker, so several brokers in one process (tests, the bench) never share counters. Labels are bounded: error
// codes from the closed union (src/wire/errors.ts), catalog service ids, stage and outcome names — never a value
// from a message. Every name is listed in docs/health-and-metrics.md.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { cryptoBackend } from '../crypto/sodium.js';

/**
 * Stages of one message, each timed on its own (seconds). `queued`: from PHI_INGEST's store time (nats-server's
 * clock) to the broker taking the message; the round trips in the order a message waits for them: `replay_claim`,
 * `audit_append`, `publish_deliveries` with `registry`, `receipt`.
 */
export const STAGES = [
  'queued',
  'verify',
  'validate',
  'project_seal',
  'replay_claim',
  'audit_append',
  'publish_deliveries',
  'registry',
  'receipt',
] as const;
export type Stage = (typeof STAGES)[number];

/** From 50 µs to 10 s: a verify takes tens of µs, an audit append under saturation can take 100s of ms. */
const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

export interface BrokerMetricsSources {
  /** Ingest messages this broker holds (being processed). */
  readonly inflight: () => number;
}

export class BrokerMetrics {
  readonly registry = new Registry();
  readonly accepted: Counter;
  readonly rejected: Counter<'code'>;
  readonly deliveries: Counter<'subscriber'>;
  readonly auditAppends: Counter<'outcome'>;
  readonly retries: Counter<'reason'>;
  readonly alerts: Counter<'rule'>;
  readonly securityIncidents: Counter<'kind'>;
  readonly ingestPending: Gauge<'state'>;
  readonly auditWritable: Gauge;
  readonly ready: Gauge;
  readonly stage: Histogram<'stage'>;

  constructor(sources: BrokerMetricsSources, opts: { readonly processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.accepted = new Counter({
      name: 'phi_broker_accepted_total',
      help: 'Ingest messages accepted (audited, delivered, registered, acknowledged).',
      registers,
    });
    this.rejected = new Counter({
      name: 'phi_broker_rejected_total',
      help: 'Ingest messages rejected and quarantined, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.deliveries = new Counter({
      name: 'phi_broker_deliveries_total',
      help: 'Deliveries stored in PHI_DELIVER for accepted messages, by subscriber.',
      labelNames: ['subscriber'],
      registers,
    });
    this.auditAppends = new Counter({
      name: 'phi_broker_audit_appends_total',
      help: "Appends of AuditEvents to this broker's audit chain, by outcome (ok: JetStream stored them; failed).",
      labelNames: ['outcome'],
      registers,
    });
    this.retries = new Counter({
      name: 'phi_broker_retries_total',
      help: 'Ingest messages left unacknowledged for a retry (nak), by reason (an error code or a NATS code).',
      labelNames: ['reason'],
      registers,
    });
    this.alerts = new Counter({
      name: 'phi_broker_alerts_total',
      help: 'Alerts raised by this broker, by rule.',
      labelNames: ['rule'],
      registers,
    });
    this.securityIncidents = new Counter({
      name: 'phi_broker_security_incidents_total',
      help: 'Clients nats-server refused, read from its log (docs/audit.md), by kind (publish-violation, subscription-violation, tls-handshake, authentication; unrecognised: a security line in an unknown format).',
      labelNames: ['kind'],
      registers,
    });
    this.ingestPending = new Gauge({
      name: 'phi_broker_ingest_pending',
      help: 'Messages on the broker consumer of PHI_INGEST: waiting (not yet delivered to any broker) and unacknowledged (delivered, not yet acknowledged), at the last health check.',
      labelNames: ['state'],
      registers,
    });
    new Gauge({
      name: 'phi_broker_inflight',
      help: 'Ingest messages this broker process is working on.',
      registers,
      collect() {
        this.set(sources.inflight());
      },
    });
    new Gauge({
      name: 'phi_broker_crypto_backend_info',
      help: 'Always 1; labels name the libsodium backend in use (native: sodium-native; wasm: libsodium-wrappers) and its version.',
      labelNames: ['backend', 'libsodium'],
      registers,
      collect() {
        const b = cryptoBackend();
        this.reset();
        this.set({ backend: b.name, libsodium: b.libsodium }, 1);
      },
    });
    this.auditWritable = new Gauge({
      name: 'phi_broker_audit_writable',
      help: '1 when the broker can append to its audit chain, 0 while it cannot (it then delivers nothing).',
      registers,
    });
    this.ready = new Gauge({
      name: 'phi_broker_ready',
      help: '1 when every readiness condition holds (/readyz answers 200), else 0.',
      registers,
    });
    this.stage = new Histogram({
      name: 'phi_broker_stage_seconds',
      help: 'Time spent in each stage of one ingest message, by stage.',
      labelNames: ['stage'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // The standard process and Node.js metrics (CPU, memory, event-loop lag), prefixed; off where several brokers share a process.
    if (opts.processMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: 'phi_broker_' });
  }

  /** Times `fn` as `stage`, also when it throws. */
  time<T>(stage: Stage, fn: () => T): T {
    const end = this.stage.startTimer({ stage });
    try {
      return fn();
    } finally {
      end();
    }
  }

  /** Records a duration measured elsewhere. */
  observe(stage: Stage, seconds: number): void {
    this.stage.observe({ stage }, seconds);
  }

  /** Times the promise as `stage` until it settles. */
  async timeAsync<T>(stage: Stage, p: Promise<T>): Promise<T> {
    const end = this.stage.startTimer({ stage });
    try {
      return await p;
    } finally {
      end();
    }
  }
}
