#!/usr/bin/env node
// The `phi-broker` command: every command and option is listed in docs/cli.md. Every command takes --data-dir
// (default .phi-broker/, or PHI_BROKER_DATA_DIR); NATS_URL points them at an existing NATS.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { initCrypto } from '../crypto/sodium.js';
import { formatIssue } from '../catalog/issues.js';
import { checkCatalog, loadCatalog } from '../runtime/catalog-dir.js';
import {
  UP_HEALTH_PORT,
  configFromEnv,
  parseConfig,
  type BrokerConfig,
  type BrokerConfigInput,
} from '../config/config.js';
import { isBrokerError } from '../wire/errors.js';
import { createLogger } from '../log/log.js';
// `up` and `demo` run the broker, which loads the FHIR model (@fhir-typescript/r4-core, seconds to import):
// they import it on demand, so `--help`, `publish`, `tail` and `catalog check` start in well under a second.
import { packageRoot } from '../runtime/package-root.js';
import { parseSince, runDisclosures } from './disclosures.js';
import { registerAuditCommands } from './audit.js';
import { registerKeyProtectCommands } from './keys-protect.js';
import { registerKeyCommands } from './keys.js';
import { runPublish } from './publish.js';
import { runQuarantineList, runQuarantineShow } from './quarantine.js';
import { runRegistryShow } from './registry.js';
import {
  runAccessExport,
  runAccessExtend,
  runAccessList,
  runAccessRequest,
  runAccessRetry,
  runAccessStatus,
} from './access.js';
import { runTail } from './tail.js';
import { runServeExample } from './serve-example.js';

interface GlobalOptions {
  dataDir?: string;
  subjects?: string;
  profiles?: string;
  logLevel?: string;
  operator?: string;
}

function configFrom(opts: GlobalOptions, extra: Partial<BrokerConfigInput> = {}): BrokerConfig {
  const input: BrokerConfigInput = { ...configFromEnv(process.env), ...extra };
  if (opts.dataDir !== undefined) input.dataDir = opts.dataDir;
  // The catalog in the working directory when there is one, else the example catalog shipped with phi-broker.
  input.subjectsDir = opts.subjects ?? (existsSync('subjects') ? 'subjects' : join(packageRoot(), 'subjects'));
  input.profilesDir =
    opts.profiles ?? (existsSync('fhir-profiles') ? 'fhir-profiles' : join(packageRoot(), 'fhir-profiles'));
  if (opts.logLevel !== undefined) input.logLevel = opts.logLevel as BrokerConfig['logLevel'];
  if (opts.operator !== undefined) input.operator = opts.operator;
  return parseConfig(input);
}

/** `up` serves /healthz, /readyz and /metrics: on --health-port, else PHI_BROKER_HEALTH_PORT, else UP_HEALTH_PORT; none with --no-health. */
function upConfig(
  opts: GlobalOptions,
  flags: { healthPort?: number; health: boolean; keyProvider?: BrokerConfig['keyProvider'] },
): BrokerConfig {
  const keys = flags.keyProvider === undefined ? {} : { keyProvider: flags.keyProvider };
  if (!flags.health) {
    const { healthPort: _off, ...rest } = configFrom(opts, keys);
    return Object.freeze(rest);
  }
  return configFrom(opts, {
    ...keys,
    healthPort: flags.healthPort ?? configFromEnv(process.env).healthPort ?? UP_HEALTH_PORT,
  });
}

function readInput(file: string | undefined): Buffer {
  return file === undefined || file === '-' ? readFileSync(0) : readFileSync(file);
}

/** The whole command tree, built without parsing: test/cli/help-docs.test.ts checks it against docs/cli.md. */
export const program = new Command('phi-broker')
  // Every command may sign or verify (compliance actions are audited): libsodium is loaded once, before any runs.
  .hook('preAction', async () => {
    await initCrypto();
  })
  .description(
    'Event-driven broker for PHI: signed, per-field-encrypted FHIR R4 over NATS JetStream with minimum-necessary projections',
  )
  .option(
    '--data-dir <dir>',
    'data directory: embedded NATS store, development keys (env PHI_BROKER_DATA_DIR)',
    undefined,
  )
  .option('--subjects <dir>', 'catalog: services and subscriptions', undefined)
  .option('--profiles <dir>', 'catalog: projection profiles', undefined)
  .option(
    '--operator <name>',
    'who runs the command, recorded in the AuditEvent of a compliance action (env PHI_BROKER_OPERATOR; default: the operating-system user)',
  )
  .addOption(
    new Option('--log-level <level>', 'pino log level (logs go to stderr)').choices([
      'fatal',
      'error',
      'warn',
      'info',
      'debug',
      'trace',
      'silent',
    ]),
  )
  .showHelpAfterError();

program
  .command('up')
  .description(
    'start an embedded nats-server on the generated mTLS config (unless NATS_URL is set), create streams, certificates and dev keys, run the broker; Ctrl-C stops',
  )
  .option('--port <port>', 'client port of the embedded nats-server (default: a free port)', (v) =>
    Number.parseInt(v, 10),
  )
  .option('--insecure-plaintext', 'INSECURE, development only: NATS without TLS, client certificates or permissions')
  // The default since mTLS became it; kept so existing scripts run unchanged.
  .addOption(new Option('--mtls', 'mutual TLS (the default)').hideHelp())
  .option(
    '--health-port <port>',
    'port of /healthz, /readyz and /metrics (default: PHI_BROKER_HEALTH_PORT, else 9464; 0: any free port)',
    (v) => Number.parseInt(v, 10),
  )
  .option('--no-health', 'serve no /healthz, /readyz or /metrics')
  .addOption(
    new Option(
      '--key-provider <provider>',
      'how private key files are protected at rest (default: PHI_BROKER_KEY_PROVIDER, else plain, development only)',
    ).choices(['plain', 'passphrase', 'keyfile']),
  )
  .action(
    async (
      opts: {
        port?: number;
        insecurePlaintext?: boolean;
        healthPort?: number;
        health: boolean;
        keyProvider?: BrokerConfig['keyProvider'];
      },
      cmd: Command,
    ) => {
      const { runUp } = await import('./up.js');
      await runUp(upConfig(cmd.optsWithGlobals<GlobalOptions>(), opts), opts.port, {
        insecurePlaintext: opts.insecurePlaintext === true,
      });
    },
  );

program
  .command('gateway')
  .description(
    'run the partner HTTPS gateway (SMART Backend Services token endpoint, /metadata) against the running NATS; Ctrl-C stops',
  )
  .option('--port <port>', 'HTTPS port (default 8443, or PHI_BROKER_GATEWAY_PORT; 0: a free port)', (v) =>
    Number.parseInt(v, 10),
  )
  .action(async (opts: { port?: number }, cmd: Command) => {
    const { runGateway } = await import('../runtime/gateway.js');
    await runGateway(
      configFrom(cmd.optsWithGlobals<GlobalOptions>(), opts.port === undefined ? {} : { gatewayPort: opts.port }),
    );
  });

const partner = program
  .command('partner')
  .description('try the partner gateway by hand, as a partner would (docs/partner-gateway.md)');
partner
  .command('token')
  .description(
    "sign a SMART Backend Services client assertion with the partner's key, get an access token from the gateway and print it",
  )
  .requiredOption('--as <partner>', 'the partner (a catalog service with a partner: block)')
  .option('--key <file>', "the partner's private JWK (its kid registered in partner.jwks)")
  .option('--scope <scopes>', "space-separated SMART scopes (default: all the partner's registered scopes)")
  .option(
    '--url <base-url>',
    "the gateway's base URL (default PHI_BROKER_GATEWAY_BASE_URL or https://localhost:<port>)",
  )
  .action(async (opts: { as: string; key?: string; scope?: string; url?: string }, cmd: Command) => {
    const { runPartnerToken } = await import('./partner.js');
    await runPartnerToken(configFrom(cmd.optsWithGlobals<GlobalOptions>()), opts, process.stdout);
  });

program
  .command('demo')
  .description('run the whole story end to end on an embedded NATS (mTLS) with the example catalog, then exit')
  .option('--json', 'print a machine-readable summary instead of text')
  .option('--insecure-plaintext', 'INSECURE, development only: NATS without TLS, client certificates or permissions')
  .action(async (opts: { json?: boolean; insecurePlaintext?: boolean }, cmd: Command) => {
    const { runDemo } = await import('./demo.js');
    const code = await runDemo(
      configFrom(cmd.optsWithGlobals<GlobalOptions>(), { logLevel: 'error' }),
      opts.json === true,
      { insecurePlaintext: opts.insecurePlaintext === true },
    );
    process.exitCode = code;
  });

program
  .command('publish')
  .description('publish a FHIR JSON resource (a Bundle goes out as its entries) as a service, with its dev keys')
  .requiredOption('--as <service>', 'the publishing service id')
  .option('--whole', 'send a Bundle as one Bundle resource instead of its entries')
  .option(
    '--deadline <ms>',
    'how long to keep trying to store each message and wait for its receipt (at most 120000)',
    (v) => Number.parseInt(v, 10),
    30_000,
  )
  .argument('[file]', 'JSON file, or - for standard input', '-')
  .action(async (file: string, opts: { as: string; whole?: boolean; deadline: number }, cmd: Command) => {
    process.exitCode = await runPublish(configFrom(cmd.optsWithGlobals<GlobalOptions>()), opts.as, readInput(file), {
      whole: opts.whole === true,
      deadlineMs: opts.deadline,
    });
  });

program
  .command('tail')
  .description("print a service's decrypted deliveries as they arrive")
  .requiredOption('--as <service>', 'the subscribing service id')
  .option('--type <type>', 'only this resource type')
  .option('--json', 'one JSON object per line: {provenance, resource}')
  .option('--count <n>', 'exit after n deliveries', (v) => Number.parseInt(v, 10))
  .action(async (opts: { as: string; type?: string; json?: boolean; count?: number }, cmd: Command) => {
    await runTail(configFrom(cmd.optsWithGlobals<GlobalOptions>()), opts.as, {
      type: opts.type ?? '*',
      json: opts.json === true,
      ...(opts.count === undefined ? {} : { count: opts.count }),
    });
  });

program
  .command('serve-example')
  .description(
    'run a catalog service as an SDK example: keep its deliveries, publish --publish files as its records, answer access requests from what it keeps',
  )
  .argument('<service>', 'the catalog service id')
  .option('--publish <file...>', 'FHIR JSON resources to publish as this service once it is up')
  .action(async (service: string, opts: { publish?: string[] }, cmd: Command) => {
    const until = new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    process.exitCode = await runServeExample(
      configFrom(cmd.optsWithGlobals<GlobalOptions>()),
      service,
      { publish: opts.publish ?? [] },
      until,
    );
  });

const quarantine = program.command('quarantine').description('rejected input kept in PHI_QUARANTINE');
quarantine
  .command('list')
  .description('list quarantine records (code, path, sender, type, message id); never decrypts')
  .option('--json', 'one JSON object per line')
  .option('--limit <n>', 'the newest n records', (v) => Number.parseInt(v, 10), 100)
  .action(async (opts: { json?: boolean; limit: number }, cmd: Command) => {
    await runQuarantineList(configFrom(cmd.optsWithGlobals<GlobalOptions>()), {
      json: opts.json === true,
      limit: opts.limit,
    });
  });
quarantine
  .command('show')
  .description(
    'one record; with --decrypt also the original input (needs the broker keys in the data dir; may print PHI)',
  )
  .argument('<id>', 'record id, e.g. q-42')
  .option('--decrypt', 'decrypt the sealed original with the broker quarantine key')
  .action(async (id: string, opts: { decrypt?: boolean }, cmd: Command) => {
    process.exitCode = await runQuarantineShow(configFrom(cmd.optsWithGlobals<GlobalOptions>()), id, {
      decrypt: opts.decrypt === true,
    });
  });

// Patient rights (45 CFR 164.522, 164.528): docs/patient-rights.md.
const collect = (v: string, prev: string[]): string[] => [...prev, v];
const consent = program
  .command('consent')
  .description(
    'patient restrictions (45 CFR 164.522) as FHIR Consent resources, applied by the broker at projection time',
  );
consent
  .command('add')
  .description(
    'restrict deliveries about a patient: to a recipient, for a purpose of use, or of resources with a sensitivity label (each option repeatable; any match stops a delivery)',
  )
  .requiredOption(
    '--patient <ref>',
    "the patient in the catalog's canonical form: Patient/<id>, or the identifier (subjects/patients.yaml)",
  )
  .option('--deny-recipient <service>', 'a catalog service that must not receive data about the patient', collect, [])
  .option('--deny-purpose <code>', 'an HL7 v3 PurposeOfUse code (e.g. HMARKT, HRESCH)', collect, [])
  .option('--deny-label <code>', 'an HL7 v3 ActCode sensitivity label (e.g. PSY, SUD, HIV, ETH)', collect, [])
  .option('--reason <text>', "the patient's stated reason (kept sealed in the Consent)")
  .action(
    async (
      opts: { patient: string; denyRecipient: string[]; denyPurpose: string[]; denyLabel: string[]; reason?: string },
      cmd: Command,
    ) => {
      const { runConsentAdd } = await import('./consent.js'); // loads the FHIR model (validates the Consent)
      await runConsentAdd(configFrom(cmd.optsWithGlobals<GlobalOptions>()), opts);
    },
  );
consent
  .command('list')
  .description("a patient's restrictions, active and revoked")
  .requiredOption(
    '--patient <ref>',
    "the patient in the catalog's canonical form: Patient/<id>, or the identifier (subjects/patients.yaml)",
  )
  .option('--json', 'one FHIR Consent (JSON) per line')
  .action(async (opts: { patient: string; json?: boolean }, cmd: Command) => {
    const { runConsentList } = await import('./consent.js');
    await runConsentList(configFrom(cmd.optsWithGlobals<GlobalOptions>()), {
      patient: opts.patient,
      json: opts.json === true,
    });
  });
consent
  .command('revoke')
  .description('end a restriction (its Consent becomes inactive); new messages flow again')
  .argument('<id>', 'the consent id that add and list print')
  .action(async (id: string, _opts: unknown, cmd: Command) => {
    const { runConsentRevoke } = await import('./consent.js');
    await runConsentRevoke(configFrom(cmd.optsWithGlobals<GlobalOptions>()), id);
  });

program
  .command('disclosures')
  .description(
    'accounting of disclosures (45 CFR 164.528): deliveries about a patient to recipients outside the covered entity',
  )
  .requiredOption(
    '--patient <ref>',
    "the patient in the catalog's canonical form: Patient/<id>, or the identifier (subjects/patients.yaml)",
  )
  .option('--since <date>', 'ISO 8601 date or date-time (default: six years back)', (v) => {
    const d = parseSince(v);
    if (d === undefined) throw new InvalidArgumentError('expected an ISO 8601 date (YYYY-MM-DD) or date-time');
    return d;
  })
  .addOption(
    new Option('--format <format>', 'text, or fhir (a Bundle of AuditEvents)')
      .choices(['text', 'fhir'])
      .default('text'),
  )
  .action(async (opts: { patient: string; since?: Date; format: 'text' | 'fhir' }, cmd: Command) => {
    await runDisclosures(configFrom(cmd.optsWithGlobals<GlobalOptions>()), {
      patient: opts.patient,
      format: opts.format,
      ...(opts.since === undefined ? {} : { since: opts.since }),
    });
  });

const registry = program
  .command('registry')
  .description('the patient-to-service registry (KV phi_registry; docs/patient-rights.md)');
registry
  .command('show')
  .description(
    'which services hold data about a patient: role, resource types, purposes, counts (needs the broker secrets in the data dir)',
  )
  .requiredOption(
    '--patient <ref>',
    "the patient in the catalog's canonical form: Patient/<id>, or the identifier (subjects/patients.yaml)",
  )
  .option('--json', 'one JSON object')
  .action(async (opts: { patient: string; json?: boolean }, cmd: Command) => {
    await runRegistryShow(configFrom(cmd.optsWithGlobals<GlobalOptions>()), opts.patient, { json: opts.json === true });
  });

const access = program
  .command('access')
  .description('right of access, 45 CFR 164.524: requests, due dates, per-service answers (docs/patient-rights.md)');
access
  .command('request')
  .description('create a request: the broker asks every service the registry names for the patient; due in 30 days')
  .requiredOption(
    '--patient <ref>',
    "the patient in the catalog's canonical form (needs the broker secrets in the data dir)",
  )
  .option('--json', 'one JSON object')
  .action(async (opts: { patient: string; json?: boolean }, cmd: Command) => {
    await runAccessRequest(configFrom(cmd.optsWithGlobals<GlobalOptions>()), opts.patient, {
      json: opts.json === true,
    });
  });
access
  .command('status')
  .description('one request: status, due date, extension, and each service answered / failed / not yet answered')
  .argument('<id>', 'request id, ar-<uuid>')
  .option('--json', 'one JSON object')
  .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
    await runAccessStatus(configFrom(cmd.optsWithGlobals<GlobalOptions>()), id, { json: opts.json === true });
  });
access
  .command('extend')
  .description('the one 30-day extension, with the written reason for the delay (45 CFR 164.524(b)(2)(ii))')
  .argument('<id>', 'request id')
  .requiredOption('--reason <text>', 'the reasons for the delay, as told to the individual (no PHI)')
  .option('--json', 'one JSON object')
  .action(async (id: string, opts: { reason: string; json?: boolean }, cmd: Command) => {
    await runAccessExtend(configFrom(cmd.optsWithGlobals<GlobalOptions>()), id, opts.reason, {
      json: opts.json === true,
    });
  });
access
  .command('list')
  .description('every request (id, status, received, due, unanswered services)')
  .option('--overdue', 'only requests past their due date and not complete')
  .option('--json', 'one JSON object per line')
  .action(async (opts: { overdue?: boolean; json?: boolean }, cmd: Command) => {
    await runAccessList(configFrom(cmd.optsWithGlobals<GlobalOptions>()), {
      overdue: opts.overdue === true,
      json: opts.json === true,
    });
  });
access
  .command('retry')
  .description(
    'ask now every service whose next attempt is due (brokers also do this on their own every 30 s); with an id, every service of that request not answered in full, refused ones included',
  )
  .argument('[id]', 'request id')
  .option('--json', 'one JSON object per line')
  .action(async (id: string | undefined, opts: { json?: boolean }, cmd: Command) => {
    await runAccessRetry(configFrom(cmd.optsWithGlobals<GlobalOptions>()), { json: opts.json === true, id });
  });
access
  .command('export')
  .description(
    'write the assembled FHIR Bundle (type collection) of the answers (PHI: choose where it goes); exit 2 when not complete',
  )
  .argument('<id>', 'request id')
  .requiredOption('--out <file>', 'where to write the Bundle JSON (mode 0600)')
  .action(async (id: string, opts: { out: string }, cmd: Command) => {
    process.exitCode = await runAccessExport(configFrom(cmd.optsWithGlobals<GlobalOptions>()), id, opts.out);
  });
registerAuditCommands(
  program
    .command('audit')
    .description('the tamper-evident audit trail in PHI_AUDIT: verify, query, export (docs/audit.md)'),
  (cmd) => configFrom(cmd.optsWithGlobals<GlobalOptions>()),
);

registerKeyProtectCommands(
  registerKeyCommands(program, (cmd) => configFrom(cmd.optsWithGlobals<GlobalOptions>())),
  (cmd) => configFrom(cmd.optsWithGlobals<GlobalOptions>()),
);

const certs = program
  .command('certs')
  .description('development CA and mTLS certificates under <data-dir>/tls (docs/security-model.md)');
for (const mode of ['init', 'rotate'] as const) {
  certs
    .command(mode)
    .description(
      mode === 'init'
        ? 'create the CA (if missing), the server certificate and a client certificate per catalog service, broker, admin, operator, auditor and gateway'
        : 'issue fresh server and client certificates (new keys) from the existing CA; then SIGHUP nats-server',
    )
    .option('--dir <dir>', 'TLS directory (default <data-dir>/tls)')
    .option('--lifetime <duration>', 'server and client certificate lifetime, e.g. 24h, 30m, 7d', '24h')
    .option('--ca-lifetime <duration>', 'lifetime of a newly created CA', '90d')
    .option('--server-host <names...>', 'DNS names / IP addresses in the server certificate', [
      'localhost',
      '127.0.0.1',
    ])
    .addOption(
      new Option(
        '--cluster-nodes <n>',
        'also a route certificate per node nats-1 … nats-<n> (SAN: its name and the server hosts), and the node names in the server certificate',
      ).choices(['3', '5']),
    )
    .action(
      async (
        opts: { dir?: string; lifetime: string; caLifetime: string; serverHost: string[]; clusterNodes?: string },
        cmd: Command,
      ) => {
        const { runCerts } = await import('./certs.js');
        await runCerts(
          configFrom(cmd.optsWithGlobals<GlobalOptions>()),
          mode,
          {
            serverHost: opts.serverHost,
            lifetime: opts.lifetime,
            caLifetime: opts.caLifetime,
            ...(opts.dir === undefined ? {} : { dir: opts.dir }),
            ...(opts.clusterNodes === undefined ? {} : { clusterNodes: Number(opts.clusterNodes) }),
          },
          process.stdout,
        );
      },
    );
}

program
  .command('nats-config')
  .description('generate the mTLS nats-server config from the catalog: one user per service, default-deny permissions')
  .option('--out <file>', 'write it to this file (default: standard output)')
  .option('--tls-dir <dir>', 'TLS directory the config points at (default <data-dir>/tls, absolute)')
  .option('--store-dir <dir>', 'JetStream store directory (default <data-dir>/nats/jetstream, absolute)')
  .option('--host <host>', 'listen address', '0.0.0.0')
  .option('--port <port>', 'client port', (v) => Number.parseInt(v, 10), 4222)
  .option('--cluster', 'a NATS cluster: one config per node, routes over mTLS (docs/deployment.md)')
  .addOption(
    new Option('--nodes <n>', 'cluster size; nodes are named nats-1 … nats-<n> and reached by that name')
      .choices(['3', '5'])
      .default('3'),
  )
  .option('--out-dir <dir>', 'with --cluster: where to write <node>.conf for each node')
  .option('--cluster-port <port>', 'with --cluster: route port of every node', (v) => Number.parseInt(v, 10), 6222)
  .option('--cluster-name <name>', 'with --cluster: the NATS cluster name', 'phi-broker')
  .action(
    async (
      opts: {
        out?: string;
        tlsDir?: string;
        storeDir?: string;
        host: string;
        port: number;
        cluster?: boolean;
        nodes: string;
        outDir?: string;
        clusterPort: number;
        clusterName: string;
      },
      cmd: Command,
    ) => {
      const { runNatsConfig } = await import('../runtime/nats-config.js');
      runNatsConfig(
        configFrom(cmd.optsWithGlobals<GlobalOptions>()),
        { ...opts, cluster: opts.cluster === true, nodes: Number(opts.nodes) },
        process.stdout,
      );
    },
  );

program
  .command('nats-provision')
  .description(
    'create/update every stream, KV bucket and object store the broker uses, and its consumer, as the admin identity over mTLS (needs NATS_URL and PHI_BROKER_NATS_TLS_DIR)',
  )
  .action(async (_opts: unknown, cmd: Command) => {
    const { runNatsProvision } = await import('../runtime/nats-provision.js');
    await runNatsProvision(configFrom(cmd.optsWithGlobals<GlobalOptions>()), process.stdout);
  });

const catalog = program.command('catalog').description('the catalog: subjects/ and fhir-profiles/');
catalog
  .command('check')
  .description('validate every catalog file; errors name the file, the path inside it and what was expected')
  .action((_opts: unknown, cmd: Command) => {
    const config = configFrom(cmd.optsWithGlobals<GlobalOptions>());
    const issues = checkCatalog({ subjects: config.subjectsDir, profiles: config.profilesDir });
    if (issues.length === 0) {
      process.stdout.write(`catalog ok: ${config.subjectsDir}, ${config.profilesDir}\n`);
      return;
    }
    for (const i of issues) process.stdout.write(`${formatIssue(i)}\n`);
    process.stdout.write(`${issues.length} problem${issues.length === 1 ? '' : 's'}\n`);
    process.exitCode = 1;
  });

catalog
  .command('export-profiles')
  .description('write each profile a partner receives as a FHIR R4 StructureDefinition (StructureDefinition-<id>.json)')
  .requiredOption('--out <dir>', 'the directory to write into (created if missing)')
  .action(async (opts: { out: string }, cmd: Command) => {
    const config = configFrom(cmd.optsWithGlobals<GlobalOptions>());
    const { runExportProfiles } = await import('./catalog.js');
    const catalog = loadCatalog({ subjects: config.subjectsDir, profiles: config.profilesDir });
    runExportProfiles(catalog, opts.out, process.stdout);
  });

/** True when this module is the process's entry (npm's `bin` is a symlink, so real paths are compared). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  return (
    script !== undefined && existsSync(script) && realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  );
}

/** A reader that stops early (`| head -1`) closes the pipe: end quietly, as other command-line tools do. */
function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(process.exitCode ?? 0);
    });
  }
}

if (isEntryPoint()) {
  endQuietlyOnClosedPipe();
  program.parseAsync(process.argv).catch((err: unknown) => {
    const log = createLogger({ level: 'error' });
    if (isBrokerError(err)) {
      process.stderr.write(`phi-broker: ${err.code}: ${err.message}\n`);
    } else {
      process.stderr.write(`phi-broker: ${err instanceof Error ? err.message : String(err)}\n`);
      log.debug({ errorClass: err instanceof Error ? err.constructor.name : typeof err }, 'command failed');
    }
    process.exitCode = 1;
  });
}
