// A broker process for the benchmark: the compiled Broker (the same class `phi-broker up` runs) against the
// bench's nats-server, with a bench catalog and keys. `phi-broker up` has no way to take a catalog and keys
// dir other than its data dir layout, and logs "ready" only on stdout, so the bench forks this runner and
// talks to it over the IPC channel: `ready` (with seconds from process start), `stats` on request, `heap` (the
// live heap after a full garbage collection, when started with --expose-gc: the soak's growth check), and a
// clean stop (in-flight messages finish) on `stop` — which also lets `--cpu-prof` write its profile.
import { join } from 'node:path';
import { pino } from 'pino';
import { Broker } from '../src/broker/broker.js';
import { ensureBrokerSecrets } from '../src/runtime/broker-secrets.js';
import { applyHeapGrowing } from '../src/runtime/heap-growing.js';
import { loadCatalog } from '../src/runtime/catalog-dir.js';
import { BROKER_ID } from '../src/wire/ids.js';
import { configFromEnv, parseConfig, type BrokerConfigInput } from '../src/config/config.js';
import { readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { createLogger } from '../src/log/log.js';
import { BROKER_IDENTITY } from '../src/tls/identity.js';
import { connectBench } from './tls.js';
import { failChild } from './child.js';
import { snapshotOf } from './stage-histogram.js';

function pick(input: BrokerConfigInput, ...keys: (keyof BrokerConfigInput)[]): Partial<BrokerConfigInput> {
  return Object.fromEntries(keys.filter((k) => input[k] !== undefined).map((k) => [k, input[k]]));
}

export interface BrokerProcessArgs {
  readonly natsUrl: string;
  readonly subjectsDir: string;
  readonly profilesDir: string;
  readonly keysDir: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The mTLS certificates (bench/tls.ts): connect as the broker identity; plaintext without. */
  readonly tlsDir?: string;
}

type ToBroker = { cmd: 'stats' } | { cmd: 'heap' } | { cmd: 'stop' };

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as BrokerProcessArgs;
  await initCrypto();
  const config = parseConfig({
    dataDir: args.dataDir,
    natsUrl: args.natsUrl,
    subjectsDir: args.subjectsDir,
    profilesDir: args.profilesDir,
    logLevel: 'info',
    // PHI_BROKER_SIGNATURE_VERSION=1 runs the broker with one signature per message (the A/B of lever 1);
    // PHI_BROKER_HEAP_GROWING_PERCENT=0 with V8's own heap growing heuristic.
    ...pick(configFromEnv(process.env), 'signatureVersion', 'heapGrowingPercent'),
  });
  // As `phi-broker up` does at start (src/cli/up.ts).
  applyHeapGrowing(config.heapGrowingPercent);
  const catalog = loadCatalog({ subjects: config.subjectsDir, profiles: config.profilesDir });
  // Production logs at info (one line per accepted message); the bench keeps that cost, writing to a file.
  const logger = createLogger({
    level: config.logLevel,
    destination: pino.destination({ dest: args.logFile, sync: true }),
  });
  const nc = await connectBench(args.natsUrl, 'phi-broker bench', BROKER_IDENTITY, args.tlsDir);
  const broker = await Broker.start({
    config,
    catalog,
    nc,
    keys: readServiceKeys(args.keysDir, BROKER_ID),
    peers: readJwks(args.keysDir),
    secrets: ensureBrokerSecrets(join(args.keysDir)),
    logger,
  });
  process.send?.({ type: 'ready', seconds: process.uptime() });
  process.on('message', (m: ToBroker) => {
    // With the stage histogram, for the window's per-stage times (bench/stage-histogram.ts).
    if (m.cmd === 'stats')
      void broker.metrics.stage
        .get()
        .then((h) => process.send?.({ type: 'stats', ...broker.stats, stages: snapshotOf(h) }));
    if (m.cmd === 'heap') {
      // What is still reachable, not garbage V8 has yet to collect; NaN without --expose-gc.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      process.send?.({ type: 'heap', liveHeapMb: gc === undefined ? NaN : process.memoryUsage().heapUsed / 1e6 });
    }
    if (m.cmd === 'stop') {
      void (async () => {
        await broker.stop();
        await nc.drain();
        const batches = broker.batchSigner?.counts;
        // How many messages a batch signature covered on average (signature version 2), on stderr beside the run.
        if (batches !== undefined && batches.signatures > 0)
          process.stderr.write(
            `broker: ${batches.messages} messages under ${batches.signatures} batch signatures (${(batches.messages / batches.signatures).toFixed(1)} per signature)\n`,
          );
        process.send?.({ type: 'stopped', ...broker.stats, registry: { ...broker.registry.store.stats } }, () =>
          process.exit(0),
        );
      })();
    }
  });
}

main().catch((err: unknown) => failChild('bench broker', err));
