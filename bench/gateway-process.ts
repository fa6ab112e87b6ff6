// A partner gateway process for the benchmark: the compiled Gateway (the class `phi-broker gateway` runs) against the
// bench's nats-server over mTLS as the gateway identity, serving HTTPS with the bench PKI's gateway certificate on a
// free loopback port. It tells the bench its URL on `ready` and stops cleanly (the audit chain sealed) on `stop`.
import { pino } from 'pino';
import { Gateway } from '../src/gateway/gateway.js';
import { loadCatalog } from '../src/runtime/catalog-dir.js';
import { gatewayPartnerKeys } from '../src/runtime/gateway.js';
import { PLAIN_KEYS } from '../src/runtime/key-protection.js';
import { readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { BROKER_ID } from '../src/wire/ids.js';
import { parseConfig } from '../src/config/config.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { createLogger } from '../src/log/log.js';
import { GATEWAY_IDENTITY } from '../src/tls/identity.js';
import { tlsLayout } from '../src/tls/store.js';
import { connectBench } from './tls.js';
import { failChild } from './child.js';

export interface GatewayProcessArgs {
  readonly natsUrl: string;
  readonly subjectsDir: string;
  readonly profilesDir: string;
  readonly keysDir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly tlsDir: string;
  /** The public base URL (token audience, Location headers). */
  readonly baseUrl: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as GatewayProcessArgs;
  await initCrypto();
  const config = parseConfig({
    dataDir: args.dataDir,
    natsUrl: args.natsUrl,
    subjectsDir: args.subjectsDir,
    profilesDir: args.profilesDir,
    gatewayPort: 0,
    gatewayBaseUrl: args.baseUrl,
    logLevel: 'info',
  });
  const catalog = loadCatalog({ subjects: config.subjectsDir, profiles: config.profilesDir });
  // Production logs at info; the bench keeps that cost, writing to a file.
  const logger = createLogger({
    level: config.logLevel,
    destination: pino.destination({ dest: args.logFile, sync: true }),
  });
  const nc = await connectBench(args.natsUrl, 'phi-broker bench gateway', GATEWAY_IDENTITY, args.tlsDir);
  const gateway = await Gateway.start({
    config,
    catalog,
    nc,
    auditKeys: readServiceKeys(args.keysDir, BROKER_ID),
    partnerKeys: await gatewayPartnerKeys(args.keysDir, catalog, PLAIN_KEYS),
    peers: readJwks(args.keysDir),
    keysDir: args.keysDir,
    tls: tlsLayout(args.tlsDir).gateway,
    logger,
    instanceId: 'gw-bench',
  });
  process.send?.({ type: 'ready', url: gateway.url, seconds: process.uptime() });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd !== 'stop') return;
    void (async () => {
      await gateway.stop();
      await nc.drain();
      process.send?.({ type: 'stopped' }, () => process.exit(0));
    })();
  });
}

main().catch((err: unknown) => failChild('bench gateway', err));
