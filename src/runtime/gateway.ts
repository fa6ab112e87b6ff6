// `phi-broker gateway`: the partner HTTPS gateway as its own process against the running NATS (NATS_URL, or the
// embedded server `up` started in the data dir), over mTLS as the gateway identity (its own narrow permissions,
// src/nats/permissions.ts), serving HTTPS with the gateway certificate `certs init` issued. Several may run side by
// side on copies of the data dir's keys; partner notifications are read as each partner's own identity.
// SIGINT/SIGTERM stop it (requests in flight finish, the chain is sealed).
import type { BrokerConfig } from '../config/config.js';
import { Gateway } from '../gateway/gateway.js';
import { createLogger } from '../log/log.js';
import { identityInbox } from '../nats/permissions.js';
import { GATEWAY_IDENTITY } from '../tls/identity.js';
import { tlsLayout } from '../tls/store.js';
import { GATEWAY_AUDIT_ID } from '../wire/ids.js';
import { cliTlsDir, connectNats, layout, loadConfiguredCatalog, natsUrl, serviceKeys } from './data-dir.js';
import { openServiceKeyVersions, readJwks } from './key-files.js';
import { configuredKeyProtection, keyFileStore, type KeyProtection } from './key-protection.js';
import type { Catalog } from '../catalog/types.js';
import type { ServiceKeys } from '../crypto/keys.js';
import { creatingPartners } from '../gateway/scopes.js';
import { serviceIdentity } from '../tls/identity.js';
import type { NatsConnection } from 'nats';
import { initCrypto } from '../crypto/sodium.js';
import { BrokerError } from '../wire/errors.js';
import { directoryRootKey } from './key-directory.js';
import type { OperatorRootKey } from '../crypto/key-directory.js';
import type { Logger } from '../log/log.js';
import { announceHeapGrowing, applyHeapGrowing } from './heap-growing.js';

/**
 * The key directory's root key as the broker takes it: the catalog's pin, else the data dir's development root key;
 * undefined (and said in the log) when there is neither, and the gateway runs on jwks.json and the catalog alone.
 */
async function gatewayDirectoryRoot(
  catalog: Catalog,
  keysDir: string,
  protection: KeyProtection,
  logger: Logger,
): Promise<OperatorRootKey | undefined> {
  try {
    const { root, pinned } = await directoryRootKey(catalog, keysDir, protection);
    if (!pinned)
      logger.warn(
        { event: 'keys.root.development' },
        "the catalog pins no operator root key: the key directory is verified under the data dir's development key",
      );
    return root;
  } catch (err) {
    if (!(err instanceof BrokerError && err.code === 'E_SETUP_MISSING')) throw err;
    logger.warn(
      { event: 'keys.directory.none' },
      'no operator root key: the gateway uses jwks.json and the catalog only (docs/keys.md)',
    );
    return undefined;
  }
}

/**
 * The service key versions of every partner the gateway publishes for, from the data dir's keys (as every
 * service's are, `<keys>/<service>.private.jwk.json`, mode 0600): E_KEY_UNKNOWN names a missing one.
 */
export async function gatewayPartnerKeys(
  keysDir: string,
  catalog: Catalog,
  protection: KeyProtection,
): Promise<Map<string, ServiceKeys[]>> {
  const keys = new Map<string, ServiceKeys[]>();
  for (const id of creatingPartners(catalog)) keys.set(id, await openServiceKeyVersions(keysDir, id, protection));
  return keys;
}

export async function runGateway(config: BrokerConfig): Promise<void> {
  const logger = createLogger({ level: config.logLevel });
  const catalog = loadConfiguredCatalog(config);
  await initCrypto();
  const keysDir = layout(config).keys;
  const protection = configuredKeyProtection(config);
  // The gateways' own audit key versions: a gateway never holds the broker's private key.
  const auditKeys = await openServiceKeyVersions(keysDir, GATEWAY_AUDIT_ID, protection);
  const natsTls = cliTlsDir(config);
  if (natsTls === undefined)
    throw new BrokerError(
      'E_CONFIG_INVALID',
      'the gateway connects over mTLS only: set PHI_BROKER_NATS_TLS_DIR, or run it beside `phi-broker up`',
      { path: 'natsTlsDir' },
    );
  const nc = await connectNats(natsUrl(config), 'phi-broker gateway', {
    files: tlsLayout(natsTls).identity(GATEWAY_IDENTITY),
    inbox: identityInbox(GATEWAY_IDENTITY),
  });
  // Once the refusals above are past, as `up` does (docs/operations.md "Memory and latency: V8's heap").
  announceHeapGrowing(applyHeapGrowing(config.heapGrowingPercent), logger);
  // Notifications: each partner's deliveries are read as the partner's own identity, with its keys.
  const partnerNcs: NatsConnection[] = [];
  const partnerAccess = async (service: string) => {
    const identity = serviceIdentity(service);
    const pnc = await connectNats(natsUrl(config), `phi-broker gateway (${service})`, {
      files: tlsLayout(natsTls).identity(identity),
      inbox: identityInbox(identity),
    });
    partnerNcs.push(pnc);
    return { nc: pnc, ...(await serviceKeys(config, service)) };
  };
  const root = await gatewayDirectoryRoot(catalog, keysDir, protection, logger);
  let gateway: Gateway;
  try {
    gateway = await Gateway.start({
      config,
      catalog,
      nc,
      auditKeys,
      partnerKeys: await gatewayPartnerKeys(keysDir, catalog, protection),
      peers: readJwks(keysDir),
      keysDir,
      keyFiles: keyFileStore(protection),
      // Partners' client certificates (RFC 8705 mutual TLS): the configured CA, else the project's.
      tls: {
        ...tlsLayout(natsTls).gateway,
        clientCaFile: config.gatewayClientCaFile ?? tlsLayout(natsTls).ca.certFile,
      },
      logger,
      partnerAccess,
      // A rotation of the gateway or of a partner loads the new version from its key file here.
      ...(root === undefined
        ? {}
        : { keyDirectory: { root, reloadOwnKeys: (party) => openServiceKeyVersions(keysDir, party, protection) } }),
    });
  } catch (err) {
    await Promise.all(partnerNcs.map((p) => p.close()));
    await nc.close();
    throw err;
  }
  process.stdout.write(
    `phi-broker gateway ready: ${gateway.url} (base URL ${gateway.baseUrl}), audit chain ${gateway.chain}\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stdout.write('phi-broker gateway stopping\n');
  await gateway.stop();
  await Promise.all(partnerNcs.map((p) => p.drain()));
  await nc.drain();
}
