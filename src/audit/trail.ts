// AuditTrail: what the broker (and later the registry, consent and access-request code) calls to audit a
// decision. `record(facts)` appends the facts to this broker instance's hash chain in PHI_AUDIT (writer.ts; record
// v2, rendered as one FHIR R4 AuditEvent per fact on read: render.ts) and resolves once they are stored — callers
// acknowledge their input only after that (45 CFR 164.312(b): audit controls). Facts also feed the alert rules.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { NatsConnection } from 'nats';
import type { BrokerConfig } from '../config/config.js';
import type { SigningKeyPair } from '../crypto/keypairs.js';
import { errorFields, type Logger } from '../log/log.js';
import { subjects } from '../wire/names.js';
import { AlertMonitor, loadAlertRules, type Alert } from './alerts.js';
import { buildAuditEventAs, type EventContext, type Recorder } from './event.js';
import { AuditEventJson } from './event-json.js';
import type { AuditFact } from './facts.js';
import { defaultInstanceId } from './instance.js';
import { ensureAuditStream } from './setup.js';
import { checkAuditIntegrity, type IntegrityCheckOptions, type IntegrityReport } from './integrity.js';
import { BrokerError } from '../wire/errors.js';
import { ChainWriter } from './writer.js';
import { RECORD_VERSION, RECORD_VERSION_EVENTS, type FactEntry, type RecordVersion } from './record.js';
import { serverMaxPayload } from '../wire/max-payload.js';

export type AuditSettings = Pick<
  BrokerConfig,
  | 'instanceId'
  | 'auditMaxAgeMs'
  | 'auditCheckpointEvery'
  | 'auditCheckpointMs'
  | 'auditIntegrityCheckMs'
  | 'duplicateWindowMs'
  | 'alertRulesFile'
  | 'replicas'
>;

export interface AuditTrailOptions {
  readonly nc: NatsConnection;
  readonly settings: AuditSettings;
  /** The Ed25519 key pair that signs the chain's checkpoints, or a look-up of the current one (rotation). */
  readonly signer: SigningKeyPair | (() => SigningKeyPair);
  /** The broker's public signing keys by kid (witnessed heads of earlier keys); default the signer's alone. */
  readonly publicKeys?: (kid: string) => Uint8Array | undefined;
  readonly logger: Logger;
  readonly now?: () => number;
  /** What writes the chain (its agent is source.observer): the broker (default), the gateway, an operator command. */
  readonly recorder?: Recorder;
  /** 2 (default): records hold the facts; 1: whole AuditEvent JSON (tests compare the two). */
  readonly recordVersion?: RecordVersion;
}

/** Bytes kept free below the server's max_payload in one record. */
const RECORD_HEADROOM = 64 * 1024;
const MAX_RECORD_BYTES = 512 * 1024;

export class AuditTrail {
  private constructor(
    readonly instanceId: string,
    private readonly writer: ChainWriter,
    private readonly ctx: EventContext,
    /** The same events as JSON.stringify(buildAuditEvent(fact, ctx)), mostly from cached templates (event-json.ts). */
    private readonly eventJson: AuditEventJson,
    private readonly nc: NatsConnection,
    private readonly monitor: AlertMonitor,
    private readonly logger: Logger,
    private readonly integrityOptions: IntegrityCheckOptions,
  ) {}

  private integrityTimer: NodeJS.Timeout | undefined;
  private integrityRun: Promise<IntegrityReport> | undefined;
  private lastIntegrity: IntegrityReport = { ok: true, problems: [] };
  private alerted = '';

  /** The last integrity check's result (readiness: a broker whose audit trail fails it is not ready). */
  get integrity(): IntegrityReport {
    return this.lastIntegrity;
  }

  static async open(opts: AuditTrailOptions): Promise<AuditTrail> {
    const { nc, settings, logger } = opts;
    const now = opts.now ?? Date.now;
    const monitor = new AlertMonitor(loadAlertRules(settings.alertRulesFile), now);
    const instanceId = settings.instanceId ?? defaultInstanceId();
    const streamSettings = {
      maxAgeMs: settings.auditMaxAgeMs,
      duplicateWindowMs: settings.duplicateWindowMs,
      replicas: settings.replicas,
    };
    const { signer } = opts;
    const current = (): SigningKeyPair => (typeof signer === 'function' ? signer() : signer);
    const integrityOptions: IntegrityCheckOptions = {
      settings: streamSettings,
      chain: instanceId,
      signingKey: opts.publicKeys ?? ((kid) => (kid === current().kid ? current().publicKey : undefined)),
    };
    // Before anything is created or continued: a weakened stream or a cut chain refuses the start.
    const before = await checkAuditIntegrity(nc, { ...integrityOptions, allowMissingStreams: true });
    if (!before.ok) {
      logger.error(
        { event: 'audit.integrity', chain: instanceId, problems: before.problems },
        'audit trail fails its check',
      );
      throw new BrokerError('E_AUDIT_INTEGRITY', `the audit trail fails its check: ${before.problems.join('; ')}`);
    }
    await ensureAuditStream(nc, streamSettings);
    const host = hostname();
    const writer = await ChainWriter.open({
      nc,
      chain: instanceId,
      signer: opts.signer,
      checkpointEvery: settings.auditCheckpointEvery,
      checkpointMs: settings.auditCheckpointMs,
      maxRecordBytes: Math.max(Math.min(serverMaxPayload(nc.info) - RECORD_HEADROOM, MAX_RECORD_BYTES), 16 * 1024),
      now,
      logger,
      source: { host, ...(opts.recorder === undefined ? {} : { recorder: opts.recorder }) },
      recordVersion: opts.recordVersion ?? RECORD_VERSION,
    });
    // No pseudonym key here: facts arrive with their patients and resources already pseudonymised (facts.ts).
    const ctx: EventContext = {
      instanceId,
      host,
      now,
      newId: randomUUID,
      ...(opts.recorder === undefined ? {} : { recorder: opts.recorder }),
    };
    logger.info({ event: 'audit.opened', chain: instanceId, seq: writer.chainSeq }, 'audit chain open');
    const trail = new AuditTrail(
      instanceId,
      writer,
      ctx,
      new AuditEventJson(ctx),
      nc,
      monitor,
      logger,
      integrityOptions,
    );
    if (settings.auditIntegrityCheckMs > 0) {
      trail.integrityTimer = setInterval(() => {
        void trail.checkIntegrity();
      }, settings.auditIntegrityCheckMs);
      trail.integrityTimer.unref();
    }
    return trail;
  }

  /**
   * Checks the audit streams' settings and this chain against its last witnessed head (integrity.ts); a problem
   * is logged (`audit.integrity`) and raises the `audit-integrity` alert once per distinct set of problems. A
   * check that cannot run (NATS unavailable) is reported as a problem too, and alerts nothing.
   */
  async checkIntegrity(): Promise<IntegrityReport> {
    this.integrityRun ??= (async () => {
      let report: IntegrityReport;
      try {
        report = await checkAuditIntegrity(this.nc, this.integrityOptions);
      } catch (err) {
        this.logger.warn(
          { event: 'audit.integrity.unchecked', chain: this.instanceId, ...errorFields(err) },
          'audit trail not checked',
        );
        report = { ok: false, problems: ['the audit trail could not be checked (see the broker log)'] };
        this.lastIntegrity = report;
        return report;
      }
      this.lastIntegrity = report;
      const key = report.problems.join('\n');
      if (!report.ok && key !== this.alerted) {
        this.logger.error(
          { event: 'audit.integrity', chain: this.instanceId, problems: report.problems },
          'audit trail fails its check',
        );
        this.raise({ rule: 'audit-integrity', detail: report.problems.join('; ') });
      }
      this.alerted = key;
      return report;
    })().finally(() => {
      this.integrityRun = undefined;
    });
    return this.integrityRun;
  }

  /** Chains and stores the facts (one AuditEvent each); resolves once they are stored. */
  async record(facts: readonly AuditFact[]): Promise<void> {
    if (facts.length === 0) return;
    if (this.writer.recordVersion !== RECORD_VERSION_EVENTS) {
      const at = this.ctx.now();
      await this.writer.appendFacts(facts.map((fact) => ({ fact, at })));
    } else await this.writer.append(facts.map((f) => this.eventJson.json(f)));
    for (const alert of this.monitor.observe(facts)) this.raise(alert);
  }

  /** Raises an alert found outside the facts (e.g. the key directory's): as `raise`. */
  alert(alert: Alert): void {
    this.raise(alert);
  }

  /**
   * An alert: a pino warning, a core NATS message on `phi.alert.<rule>` (the AuditEvent JSON, for whoever
   * watches) and an AuditEvent in the chain. Not awaited by the caller: an alert never holds up a message.
   */
  private raise(alert: Alert): void {
    const { json, entry } = this.announced(alert);
    const stored =
      this.writer.recordVersion !== RECORD_VERSION_EVENTS
        ? this.writer.appendFacts([entry])
        : this.writer.append([json]);
    stored.catch((err: unknown) => {
      this.logger.error(
        { event: 'audit.alert.unrecorded', rule: alert.rule, code: (err as { code?: unknown }).code },
        'alert not recorded in the audit trail',
      );
    });
  }

  /**
   * Announces an alert without appending it: the pino warning `audit.alert` and the core NATS message on
   * `phi.alert.<rule>`. Returns the alert's AuditEvent JSON. For an alert about the trail itself
   * (`audit-unavailable`), whose AuditEvent the caller records once the trail is writable again.
   */
  announce(alert: Alert): string {
    return this.announced(alert).json;
  }

  /** The announced alert's AuditEvent JSON, and its fact with the same id and time to store. */
  private announced(alert: Alert): { json: string; entry: FactEntry } {
    const fact = alertFact(alert);
    this.logger.warn(
      { event: 'audit.alert', rule: alert.rule, service: alert.service, detail: alert.detail },
      'audit alert',
    );
    const entry = { fact, at: this.ctx.now(), id: this.ctx.newId() };
    const json = JSON.stringify(buildAuditEventAs(fact, this.ctx, entry.id, new Date(entry.at).toISOString()));
    if (!this.nc.isClosed()) this.nc.publish(subjects.alert(alert.rule), json);
    return { json, entry };
  }

  /** Waits for pending records, then seals the chain with a final signed checkpoint. */
  async close(): Promise<void> {
    clearInterval(this.integrityTimer);
    await this.integrityRun;
    await this.writer.close();
  }
}

/** The alert as an audit fact (DCM Security Alert; event.ts). */
export function alertFact(alert: Alert): AuditFact {
  return {
    kind: 'alert',
    rule: alert.rule,
    ...(alert.service === undefined ? {} : { service: alert.service }),
    detail: alert.detail,
  };
}
