// Broker configuration: parsed once at the edge (environment, then CLI flags) with zod, defaulted,
// frozen and passed to constructors. Invalid configuration refuses to start, naming the setting.
import { resolve } from 'node:path';
import { z } from 'zod';
import { INSTANCE_ID_PATTERN } from '../wire/ids.js';
import { BrokerError } from '../wire/errors.js';
import { DUPLICATE_WINDOW_MIN_MS } from '../wire/publish.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DAY = 24 * 60 * 60 * 1000;
/** Six years of days, two leap days included (45 CFR 164.528(a)(3); 164.530(j)(2)). */
const DISCLOSURE_RETENTION_DAYS = 6 * 365 + 2;

export const configSchema = z.strictObject({
  /** Where `up` keeps the embedded NATS store, dev keys and state (`PHI_BROKER_DATA_DIR`). */
  dataDir: z.string().min(1).default('.phi-broker'),
  /** An existing NATS to use instead of the embedded one (`NATS_URL`); a cluster as comma-separated URLs. */
  natsUrl: z.string().min(1).optional(),
  /**
   * The mTLS files (`phi-broker certs init`, layout in src/tls/store.ts) the CLI connects to `natsUrl` with: the
   * broker as the broker identity, after provisioning streams as the admin (`PHI_BROKER_NATS_TLS_DIR`).
   */
  natsTlsDir: z.string().min(1).optional(),
  /**
   * Which mTLS identity the operator commands connect as (`PHI_BROKER_OPERATOR_IDENTITY`). `auto`: the read-only
   * commands (audit, registry show, disclosures, access status|list|export, consent list, quarantine list|show) as
   * the auditor when its certificate is in the TLS dir, else as the operator; the commands that write (consent
   * add|revoke, access request|extend|retry) as the operator. `auditor` or `operator`: the read-only commands as that
   * one. `admin`: every command as the admin (break-glass; the admin is otherwise for provisioning alone).
   */
  operatorIdentity: z.enum(['auto', 'auditor', 'operator', 'admin']).default('auto'),
  /**
   * The person running an operator command, recorded as the user agent of its AuditEvent (`PHI_BROKER_OPERATOR`,
   * `--operator`); unset: the operating-system user (docs/audit.md, "Operator actions").
   */
  operator: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'letters, digits and . _ @ -, at most 64')
    .optional(),
  subjectsDir: z.string().min(1).default('subjects'),
  profilesDir: z.string().min(1).default('fhir-profiles'),
  /** Largest envelope accepted on ingest, bytes; larger ones are rejected E_TOO_LARGE (the streams take any size NATS carries). */
  maxMessageBytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * MiB)
    .default(MiB),
  /**
   * How the broker signs deliveries and receipts (`PHI_BROKER_SIGNATURE_VERSION`, docs/wire-format.md): 2, one
   * Ed25519 signature per batch over a Merkle tree head; 1, one per message (for subscribers whose SDK reads only v1).
   */
  signatureVersion: z.union([z.literal(1), z.literal(2)]).default(2),
  /** Allowed difference between an envelope's iat and the time NATS stored it. */
  clockSkewMs: z
    .number()
    .int()
    .min(1000)
    .max(DAY)
    .default(5 * 60 * 1000),
  /**
   * JetStream de-duplication window of the streams (Nats-Msg-Id). At least the longest SDK publish deadline, so a
   * publisher's resends of one message are stored once (src/wire/publish.ts, docs/publishing.md).
   */
  duplicateWindowMs: z.number().int().min(DUPLICATE_WINDOW_MIN_MS).default(DUPLICATE_WINDOW_MIN_MS),
  /**
   * How long an accepted message id is remembered (KV phi_seen). A message whose iat is older than this
   * less clockSkewMs can no longer be checked for replay and is rejected E_CLOCK_SKEW (quarantined; the
   * publisher re-publishes it under a new id): the bound on how long a backlog may wait in PHI_INGEST.
   */
  replayWindowMs: z
    .number()
    .int()
    .min(60_000)
    .max(30 * DAY)
    .default(6 * 60 * 60 * 1000),
  deliverMaxAgeMs: z
    .number()
    .int()
    .min(60_000)
    .default(7 * DAY),
  quarantineMaxAgeMs: z
    .number()
    .int()
    .min(60_000)
    .default(90 * DAY),
  receiptMaxAgeMs: z.number().int().min(60_000).default(DAY),
  /**
   * Retention of the accounting of disclosures (stream PHI_DISCLOSURES). 45 CFR 164.528(a) gives a patient
   * the disclosures of the six years before the request: the default is six years, leap days included.
   */
  disclosureMaxAgeMs: z
    .number()
    .int()
    .min(60_000)
    .default(DISCLOSURE_RETENTION_DAYS * DAY),
  /**
   * Size limits (JetStream `max_bytes`) of the streams the broker provisions, sized for one machine; what happens at
   * each is in docs/broker.md "Storage limits". PHI_AUDIT and PHI_AUDIT_WITNESS stay unlimited (the audit-integrity
   * check treats a byte limit as a weakening: records of six-year retention are never dropped or refused).
   */
  ingestMaxBytes: z.number().int().min(MiB).default(GiB),
  deliverMaxBytes: z
    .number()
    .int()
    .min(MiB)
    .default(4 * GiB),
  quarantineMaxBytes: z.number().int().min(MiB).default(GiB),
  receiptMaxBytes: z
    .number()
    .int()
    .min(MiB)
    .default(256 * MiB),
  disclosureMaxBytes: z
    .number()
    .int()
    .min(MiB)
    .default(4 * GiB),
  /** KV phi_seen (the replay cache): one small entry per accepted message within replayWindowMs. */
  seenMaxBytes: z.number().int().min(MiB).default(GiB),
  /**
   * Per-sender quarantine quota, a token bucket in each broker process: a sender may have this many bytes and this
   * many rejected inputs quarantined whole per window; beyond it only a small record is kept (E_QUARANTINE_QUOTA).
   */
  quarantineSenderMaxBytes: z
    .number()
    .int()
    .min(1024)
    .default(64 * MiB),
  quarantineSenderMaxMessages: z.number().int().min(1).default(1000),
  quarantineSenderWindowMs: z
    .number()
    .int()
    .min(1000)
    .max(DAY)
    .default(60 * 60_000),
  /**
   * Per-sender rejection rate limit, a token bucket in each broker process: this many rejections per window are
   * handled in full (quarantined, audited one by one); beyond it each is answered E_SENDER_THROTTLED and counted
   * into one summary record and AuditEvent per sender per window.
   */
  rejectionSenderMaxMessages: z.number().int().min(1).default(100),
  rejectionSenderWindowMs: z.number().int().min(1000).max(DAY).default(60_000),
  /** How long JetStream waits for a broker's ack before redelivering to another broker (after a crash). */
  ackWaitMs: z
    .number()
    .int()
    .min(1000)
    .max(10 * 60 * 1000)
    .default(30_000),
  /**
   * Copies JetStream keeps of every stream, KV bucket and object store (`PHI_BROKER_REPLICAS`): 1 on one nats-server,
   * 3 on a 3-node cluster (survives one lost node), 5 on five (survives two). An odd count: each is a RAFT group that
   * needs a majority. Applied by provisioning (docs/deployment.md).
   */
  replicas: z.union([z.literal(1), z.literal(3), z.literal(5)], { error: 'expected 1, 3 or 5' }).default(1),
  /** Ingest messages processed concurrently by one broker process. */
  concurrency: z.number().int().min(1).max(4096).default(64),
  /**
   * V8's old generation may grow to (1 + heapGrowingPercent / 100) × the live heap before its next full collection
   * (`--heap-growing-percent`, set by `phi-broker up` at start; docs/operations.md "Memory and latency: V8's heap").
   * 0 leaves V8's heuristic, which allows up to 4× on a machine with 16 GB or more.
   */
  heapGrowingPercent: z.number().int().min(0).max(1000).default(50),
  /** Right of access: how long one service has to answer the broker's question (docs/patient-rights.md). */
  accessAnswerTimeoutMs: z
    .number()
    .int()
    .min(100)
    .max(10 * 60 * 1000)
    .default(10_000),
  /** Right of access: how often each broker process asks again the services whose next attempt is due; 0: only on `access retry`. */
  accessRetryIntervalMs: z.number().int().min(0).max(DAY).default(30_000),
  /**
   * This broker process's audit chain (`phi.audit.<instanceId>`, docs/audit.md). Unset: each Broker derives a
   * unique one (host-pid-random). Set it only to continue one chain across restarts, never on two processes.
   */
  instanceId: z.string().regex(INSTANCE_ID_PATTERN, 'letters, digits and hyphens, at most 40').optional(),
  /** Retention of PHI_AUDIT: six years (45 CFR 164.316(b)(2)(i)), 2,192 days. */
  auditMaxAgeMs: z
    .number()
    .int()
    .min(DAY)
    .default(2192 * DAY),
  /** The broker signs a checkpoint of its audit chain head after this many records … */
  auditCheckpointEvery: z.number().int().min(1).max(1_000_000).default(1000),
  /** … or when this long has passed with unsealed records, whichever comes first. */
  auditCheckpointMs: z.number().int().min(100).max(DAY).default(60_000),
  /**
   * How often each broker checks PHI_AUDIT's and PHI_AUDIT_WITNESS's settings and its chain against its last
   * witnessed head (src/audit/integrity.ts; a problem raises the `audit-integrity` alert); 0: at start only.
   */
  auditIntegrityCheckMs: z
    .number()
    .int()
    .min(0)
    .max(DAY)
    .default(5 * 60_000),
  /** JSON file overriding the default alert rules (src/audit/alerts.ts, docs/audit.md). Unset: the defaults. */
  alertRulesFile: z.string().min(1).optional(),
  /**
   * Port of the broker's /healthz, /readyz and /metrics (docs/health-and-metrics.md); 0: any free port. Unset: no
   * endpoints (library use); `phi-broker up` then serves them on UP_HEALTH_PORT.
   */
  healthPort: z.number().int().min(0).max(65535).optional(),
  /** Address the endpoints bind to: loopback unless a scraper elsewhere must reach them. */
  healthHost: z.string().min(1).default('127.0.0.1'),
  /** How often the broker checks JetStream, its streams' settings and PHI_AUDIT for /readyz (and the consumer's backlog). */
  healthCheckMs: z.number().int().min(100).max(60_000).default(5_000),
  /** Port the partner gateway (`phi-broker gateway`) listens on with HTTPS (`PHI_BROKER_GATEWAY_PORT`); 0: any free port. */
  gatewayPort: z.number().int().min(0).max(65535).default(8443),
  /** Address the gateway binds (`PHI_BROKER_GATEWAY_HOST`); loopback unless a deployment says otherwise. */
  gatewayHost: z.string().min(1).default('127.0.0.1'),
  /**
   * The gateway's public base URL as partners reach it (`PHI_BROKER_GATEWAY_BASE_URL`): the FHIR base, the issuer of
   * its access tokens, and (with `/auth/token`) the `aud` every client assertion must carry. Default
   * `https://localhost:<gatewayPort>`.
   */
  gatewayBaseUrl: z
    .url({ protocol: /^https$/, error: 'expected an https URL' })
    .refine((u) => !u.endsWith('/'), 'expected no trailing /')
    .optional(),
  /**
   * PEM CA certificate(s) the gateway verifies partners' TLS client certificates with (`PHI_BROKER_GATEWAY_CLIENT_CA`,
   * RFC 8705 mutual TLS, `partner.mtls`). Default: the development CA of the TLS directory (`ca.cert.pem`).
   */
  gatewayClientCaFile: z.string().min(1).optional(),
  /**
   * How private key files in `<data-dir>/keys` are protected at rest (`PHI_BROKER_KEY_PROVIDER`,
   * docs/keys-at-rest.md): `plain` (development only, the default, said at start-up), `passphrase`
   * (PHI_BROKER_KEY_PASSPHRASE or PHI_BROKER_KEY_PASSPHRASE_FILE) or `keyfile` (keyProviderFile).
   */
  keyProvider: z.enum(['plain', 'passphrase', 'keyfile']).default('plain'),
  /** The 32-byte key of the `keyfile` provider, mode 0600 (`PHI_BROKER_KEY_PROVIDER_FILE`). */
  keyProviderFile: z.string().min(1).optional(),
  /** Argon2id cost of files the `passphrase` provider seals (`PHI_BROKER_KEY_KDF`): libsodium's named limits. */
  keyKdf: z.enum(['interactive', 'moderate', 'sensitive']).default('moderate'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** The embedded nats-server's log file rotates past this size (nats-server `logfile_size_limit`), bytes. */
  natsLogMaxBytes: z
    .number()
    .int()
    .min(1024)
    .default(10 * 1024 * 1024),
  /** Rotated nats-server log files kept beside the current one (docs/operations.md). */
  natsLogFiles: z.number().int().min(1).max(1000).default(10),
  /**
   * Security incidents from nats-server's log (docs/audit.md): lines are aggregated per kind and client over this
   * interval, so a flood of refused clients writes one AuditEvent per client and kind per interval.
   */
  securityLogIntervalMs: z.number().int().min(100).max(3_600_000).default(10_000),
  /**
   * A nats-server log file `up` follows for security incidents when it runs on NATS_URL (a server on this machine,
   * or its log on a shared volume). The embedded server's log is always followed. Unset: none.
   */
  natsLogFile: z.string().min(1).optional(),
  /** Restarts of an embedded nats-server that exits unexpectedly before `up` gives up and exits 1; 0: none. */
  natsRestartAttempts: z.number().int().min(0).max(100).default(5),
  /** Upper bound on how long `up` takes to stop after SIGTERM/SIGINT (drain, stop nats-server, release the lock). */
  stopTimeoutMs: z.number().int().min(2000).max(300_000).default(15_000),
});

/** The port `phi-broker up` serves /healthz, /readyz and /metrics on when `healthPort` is unset (Prometheus exporter range). */
export const UP_HEALTH_PORT = 9464;

export type BrokerConfig = Readonly<z.output<typeof configSchema>>;
export type BrokerConfigInput = z.input<typeof configSchema>;

/** Validates, defaults and freezes; throws E_CONFIG_INVALID naming every bad setting. */
export function parseConfig(input: BrokerConfigInput): BrokerConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new BrokerError('E_CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  const c = result.data;
  // JetStream refuses a stream whose de-duplication window exceeds its max age, so the broker could not start.
  const ages = {
    deliverMaxAgeMs: c.deliverMaxAgeMs,
    quarantineMaxAgeMs: c.quarantineMaxAgeMs,
    receiptMaxAgeMs: c.receiptMaxAgeMs,
    disclosureMaxAgeMs: c.disclosureMaxAgeMs,
  };
  const shorter = Object.entries(ages)
    .filter(([, age]) => c.duplicateWindowMs > age)
    .map(([name]) => name);
  if (shorter.length > 0) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `invalid configuration: duplicateWindowMs: must not exceed ${shorter.join(', ')}`,
    );
  }
  // The replay cache must outlive any message that can still pass the skew check.
  if (c.replayWindowMs < 2 * c.clockSkewMs + c.duplicateWindowMs) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      'invalid configuration: replayWindowMs: must be at least 2 × clockSkewMs + duplicateWindowMs',
    );
  }
  return Object.freeze({
    ...c,
    ...(c.natsTlsDir === undefined ? {} : { natsTlsDir: resolve(c.natsTlsDir) }),
    dataDir: resolve(c.dataDir),
    subjectsDir: resolve(c.subjectsDir),
    profilesDir: resolve(c.profilesDir),
    ...(c.alertRulesFile === undefined ? {} : { alertRulesFile: resolve(c.alertRulesFile) }),
    ...(c.natsLogFile === undefined ? {} : { natsLogFile: resolve(c.natsLogFile) }),
    ...(c.keyProviderFile === undefined ? {} : { keyProviderFile: resolve(c.keyProviderFile) }),
  });
}

/** Environment variables, one per setting (the CLI's flags override them). */
export const CONFIG_ENV = {
  PHI_BROKER_DATA_DIR: 'dataDir',
  NATS_URL: 'natsUrl',
  PHI_BROKER_NATS_TLS_DIR: 'natsTlsDir',
  PHI_BROKER_OPERATOR_IDENTITY: 'operatorIdentity',
  PHI_BROKER_OPERATOR: 'operator',
  PHI_BROKER_MAX_MESSAGE_BYTES: 'maxMessageBytes',
  PHI_BROKER_SIGNATURE_VERSION: 'signatureVersion',
  PHI_BROKER_CLOCK_SKEW_MS: 'clockSkewMs',
  PHI_BROKER_DUPLICATE_WINDOW_MS: 'duplicateWindowMs',
  PHI_BROKER_REPLAY_WINDOW_MS: 'replayWindowMs',
  PHI_BROKER_DELIVER_MAX_AGE_MS: 'deliverMaxAgeMs',
  PHI_BROKER_QUARANTINE_MAX_AGE_MS: 'quarantineMaxAgeMs',
  PHI_BROKER_RECEIPT_MAX_AGE_MS: 'receiptMaxAgeMs',
  PHI_BROKER_DISCLOSURE_MAX_AGE_MS: 'disclosureMaxAgeMs',
  PHI_BROKER_INGEST_MAX_BYTES: 'ingestMaxBytes',
  PHI_BROKER_DELIVER_MAX_BYTES: 'deliverMaxBytes',
  PHI_BROKER_QUARANTINE_MAX_BYTES: 'quarantineMaxBytes',
  PHI_BROKER_RECEIPT_MAX_BYTES: 'receiptMaxBytes',
  PHI_BROKER_DISCLOSURE_MAX_BYTES: 'disclosureMaxBytes',
  PHI_BROKER_SEEN_MAX_BYTES: 'seenMaxBytes',
  PHI_BROKER_QUARANTINE_SENDER_MAX_BYTES: 'quarantineSenderMaxBytes',
  PHI_BROKER_QUARANTINE_SENDER_MAX_MESSAGES: 'quarantineSenderMaxMessages',
  PHI_BROKER_QUARANTINE_SENDER_WINDOW_MS: 'quarantineSenderWindowMs',
  PHI_BROKER_REJECTION_SENDER_MAX_MESSAGES: 'rejectionSenderMaxMessages',
  PHI_BROKER_REJECTION_SENDER_WINDOW_MS: 'rejectionSenderWindowMs',
  PHI_BROKER_ACK_WAIT_MS: 'ackWaitMs',
  PHI_BROKER_CONCURRENCY: 'concurrency',
  PHI_BROKER_HEAP_GROWING_PERCENT: 'heapGrowingPercent',
  PHI_BROKER_REPLICAS: 'replicas',
  PHI_BROKER_ACCESS_ANSWER_TIMEOUT_MS: 'accessAnswerTimeoutMs',
  PHI_BROKER_ACCESS_RETRY_INTERVAL_MS: 'accessRetryIntervalMs',
  PHI_BROKER_KEY_PROVIDER: 'keyProvider',
  PHI_BROKER_KEY_PROVIDER_FILE: 'keyProviderFile',
  PHI_BROKER_KEY_KDF: 'keyKdf',
  PHI_BROKER_LOG_LEVEL: 'logLevel',
  PHI_BROKER_INSTANCE_ID: 'instanceId',
  PHI_BROKER_AUDIT_MAX_AGE_MS: 'auditMaxAgeMs',
  PHI_BROKER_AUDIT_CHECKPOINT_EVERY: 'auditCheckpointEvery',
  PHI_BROKER_AUDIT_CHECKPOINT_MS: 'auditCheckpointMs',
  PHI_BROKER_AUDIT_INTEGRITY_CHECK_MS: 'auditIntegrityCheckMs',
  PHI_BROKER_ALERT_RULES_FILE: 'alertRulesFile',
  PHI_BROKER_NATS_LOG_MAX_BYTES: 'natsLogMaxBytes',
  PHI_BROKER_NATS_LOG_FILES: 'natsLogFiles',
  PHI_BROKER_NATS_LOG_FILE: 'natsLogFile',
  PHI_BROKER_SECURITY_LOG_INTERVAL_MS: 'securityLogIntervalMs',
  PHI_BROKER_NATS_RESTART_ATTEMPTS: 'natsRestartAttempts',
  PHI_BROKER_STOP_TIMEOUT_MS: 'stopTimeoutMs',
  PHI_BROKER_HEALTH_PORT: 'healthPort',
  PHI_BROKER_HEALTH_HOST: 'healthHost',
  PHI_BROKER_HEALTH_CHECK_MS: 'healthCheckMs',
  PHI_BROKER_GATEWAY_PORT: 'gatewayPort',
  PHI_BROKER_GATEWAY_HOST: 'gatewayHost',
  PHI_BROKER_GATEWAY_BASE_URL: 'gatewayBaseUrl',
  PHI_BROKER_GATEWAY_CLIENT_CA: 'gatewayClientCaFile',
} as const satisfies Record<string, keyof BrokerConfigInput>;

const NUMERIC: ReadonlySet<string> = new Set([
  'maxMessageBytes',
  'signatureVersion',
  'clockSkewMs',
  'duplicateWindowMs',
  'replayWindowMs',
  'deliverMaxAgeMs',
  'quarantineMaxAgeMs',
  'receiptMaxAgeMs',
  'disclosureMaxAgeMs',
  'ingestMaxBytes',
  'deliverMaxBytes',
  'quarantineMaxBytes',
  'receiptMaxBytes',
  'disclosureMaxBytes',
  'seenMaxBytes',
  'quarantineSenderMaxBytes',
  'quarantineSenderMaxMessages',
  'quarantineSenderWindowMs',
  'rejectionSenderMaxMessages',
  'rejectionSenderWindowMs',
  'ackWaitMs',
  'concurrency',
  'heapGrowingPercent',
  'replicas',
  'accessAnswerTimeoutMs',
  'accessRetryIntervalMs',
  'auditMaxAgeMs',
  'auditCheckpointEvery',
  'auditCheckpointMs',
  'natsLogMaxBytes',
  'natsLogFiles',
  'securityLogIntervalMs',
  'natsRestartAttempts',
  'stopTimeoutMs',
  'auditIntegrityCheckMs',
  'healthPort',
  'healthCheckMs',
  'gatewayPort',
]);

/**
 * The settings the environment sets. A numeric variable that is not a number is E_CONFIG_INVALID naming
 * the variable (never its value, which is configuration but may be anything).
 */
export function configFromEnv(env: NodeJS.ProcessEnv): BrokerConfigInput {
  const input: Record<string, string | number> = {};
  for (const [variable, setting] of Object.entries(CONFIG_ENV)) {
    const raw = env[variable];
    if (raw === undefined || raw === '') continue;
    if (NUMERIC.has(setting)) {
      const n = Number(raw);
      if (!Number.isFinite(n))
        throw new BrokerError('E_CONFIG_INVALID', `invalid configuration: ${variable} (${setting}): expected a number`);
      input[setting] = n;
    } else {
      input[setting] = raw;
    }
  }
  return input as BrokerConfigInput;
}
