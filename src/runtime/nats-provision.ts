// `phi-broker nats-provision`: creates or updates every stream, KV bucket and object store the broker uses
// (src/runtime/provision.ts), the broker's consumer and every subscriber's delivery consumers (from the catalog),
// as the admin identity — under the generated mTLS permissions the only identity that may — then exits. Run it
// before the broker starts and after a retention setting or the catalog's subscribers change (docker-compose.yml
// runs it once).
import type { Writable } from 'node:stream';
import type { BrokerConfig } from '../config/config.js';
import { ADMIN_INBOX_ID } from '../nats/permissions.js';
import { provisionStreams } from './provision.js';
import { ADMIN_IDENTITY } from '../tls/identity.js';
import { tlsLayout } from '../tls/store.js';
import { connectNats } from './data-dir.js';
import { BrokerError } from '../wire/errors.js';

export async function runNatsProvision(config: BrokerConfig, out: Writable): Promise<void> {
  if (config.natsUrl === undefined || config.natsTlsDir === undefined) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      'nats-provision needs NATS_URL and PHI_BROKER_NATS_TLS_DIR (it connects as the admin identity over mTLS)',
      { path: config.natsUrl === undefined ? 'natsUrl' : 'natsTlsDir' },
    );
  }
  const nc = await connectNats(config.natsUrl, 'phi-broker-admin', {
    files: tlsLayout(config.natsTlsDir).identity(ADMIN_IDENTITY),
    inbox: `_INBOX.${ADMIN_INBOX_ID}`,
  });
  try {
    await provisionStreams(nc, config);
  } finally {
    await nc.close();
  }
  out.write(`provisioned streams and delivery consumers on ${config.natsUrl} as the admin identity\n`);
}
