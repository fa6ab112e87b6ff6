// Stream provisioning as the admin identity. Under the generated mTLS permissions (permissions.ts) only the
// admin may create or update streams, so a deployment runs this once (and after a catalog or retention change)
// before the broker starts; the broker then finds its streams, KV bucket and consumers as configured and only
// creates its durable consumers. Same settings as the broker's own start (broker.ts).
import type { NatsConnection } from 'nats';
import type { BrokerConfig } from '../config.js';
import { ensureBrokerInfrastructure, type StreamSettings } from './setup.js';

export function streamSettings(config: BrokerConfig): StreamSettings {
  return {
    deliverMaxAgeMs: config.deliverMaxAgeMs,
    quarantineMaxAgeMs: config.quarantineMaxAgeMs,
    receiptMaxAgeMs: config.receiptMaxAgeMs,
    duplicateWindowMs: config.duplicateWindowMs,
    replayWindowMs: config.replayWindowMs,
    ackWaitMs: config.ackWaitMs,
  };
}

/** Creates or updates PHI_INGEST, PHI_DELIVER, PHI_QUARANTINE, PHI_RECEIPTS, the broker consumer and phi_seen. */
export async function provisionStreams(adminNc: NatsConnection, config: BrokerConfig): Promise<void> {
  await ensureBrokerInfrastructure(adminNc, streamSettings(config));
}
