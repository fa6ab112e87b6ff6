// Broker configuration: parsed once at the edge (CLI flags and environment) with zod, defaulted,
// frozen and passed to constructors. Invalid configuration refuses to start, naming the setting.
import { resolve } from 'node:path';
import { z } from 'zod';
import { BrokerError } from './errors.js';

const MiB = 1024 * 1024;
const DAY = 24 * 60 * 60 * 1000;

export const configSchema = z.strictObject({
  /** Where `up` keeps the embedded NATS store, dev keys and state (`PHI_BROKER_DATA_DIR`). */
  dataDir: z.string().min(1).default('.phi-broker'),
  /** An existing NATS to use instead of the embedded one (`NATS_URL`). */
  natsUrl: z.string().min(1).optional(),
  subjectsDir: z.string().min(1).default('subjects'),
  profilesDir: z.string().min(1).default('fhir-profiles'),
  /** Largest envelope accepted on ingest, bytes; larger ones are rejected E_TOO_LARGE (the streams take any size NATS carries). */
  maxMessageBytes: z.number().int().min(1024).max(64 * MiB).default(MiB),
  /** Allowed difference between an envelope's iat and the time NATS stored it. */
  clockSkewMs: z.number().int().min(1000).max(DAY).default(5 * 60 * 1000),
  duplicateWindowMs: z.number().int().min(1000).default(2 * 60 * 1000),
  deliverMaxAgeMs: z.number().int().min(60_000).default(7 * DAY),
  quarantineMaxAgeMs: z.number().int().min(60_000).default(90 * DAY),
  receiptMaxAgeMs: z.number().int().min(60_000).default(DAY),
  /** How long JetStream waits for a broker's ack before redelivering to another broker (after a crash). */
  ackWaitMs: z.number().int().min(1000).max(10 * 60 * 1000).default(30_000),
  /** Ingest messages processed concurrently by one broker process. */
  concurrency: z.number().int().min(1).max(4096).default(64),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

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
  const ages = { deliverMaxAgeMs: c.deliverMaxAgeMs, quarantineMaxAgeMs: c.quarantineMaxAgeMs, receiptMaxAgeMs: c.receiptMaxAgeMs };
  const shorter = Object.entries(ages).filter(([, age]) => c.duplicateWindowMs > age).map(([name]) => name);
  if (shorter.length > 0) {
    throw new BrokerError('E_CONFIG_INVALID', `invalid configuration: duplicateWindowMs: must not exceed ${shorter.join(', ')}`);
  }
  return Object.freeze({ ...c, dataDir: resolve(c.dataDir), subjectsDir: resolve(c.subjectsDir), profilesDir: resolve(c.profilesDir) });
}

/** The replay cache must outlive any message that can still pass the skew check. */
export function replayWindowMs(config: BrokerConfig): number {
  return 2 * config.clockSkewMs + config.duplicateWindowMs;
}
