// `phi-broker keys list|publish|rotate|prune|revoke`: the key directory (docs/keys.md). Prints kids, statuses and dates,
// never key material. Writes connect as the operator identity and sign entries with the operator root key.
import type { Command } from 'commander';
import type { Writable } from 'node:stream';
import type { BrokerConfig } from '../config/config.js';
import { initCrypto } from '../crypto/sodium.js';
import { parseDuration } from '../tls/duration.js';
import { configuredKeyProtection } from '../runtime/key-protection.js';
import { BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID, SERVICE_ID_PATTERN } from '../wire/ids.js';
import { readFileSync } from 'node:fs';
import { BrokerError } from '../wire/errors.js';
import { connectOperator, layout, loadConfiguredCatalog } from '../runtime/data-dir.js';
import {
  directoryRootKey,
  ciphertextRetentionMs,
  listDirectory,
  localParties,
  pruneParties,
  publishDirectory,
  publishPartnerKeys,
  revokeKey,
  rotateParty,
  signingRootKey,
  type ListedKey,
} from '../runtime/key-directory.js';
import type { NatsConnection } from 'nats';

async function withOperator<T>(
  config: BrokerConfig,
  access: 'read' | 'write',
  work: (nc: NatsConnection) => Promise<T>,
): Promise<T> {
  await initCrypto();
  const nc = await connectOperator(config, `phi-broker keys`, access);
  try {
    return await work(nc);
  } finally {
    await nc.close();
  }
}

function table(rows: readonly ListedKey[]): string {
  const head = ['PARTY', 'KID', 'USE', 'STATUS', 'CREATED', 'NOT AFTER', 'RETIRED', 'REVOKED', 'REASON'];
  const body = rows.map((r) => [
    r.party,
    r.kid,
    r.use,
    r.status,
    r.created,
    r.notAfter ?? '-',
    r.retired ?? '-',
    r.revokedAt ?? '-',
    r.reason ?? '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  return [head, ...body]
    .map((cols) =>
      cols
        .map((c, i) => c.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export async function runKeysList(config: BrokerConfig, opts: { json?: boolean }, out: Writable): Promise<void> {
  const catalog = loadConfiguredCatalog(config);
  const { root } = await directoryRootKey(catalog, layout(config).keys, configuredKeyProtection(config));
  const rows = await withOperator(config, 'read', (nc) => listDirectory(nc, root));
  out.write(opts.json === true ? `${JSON.stringify(rows, null, 2)}\n` : `${table(rows)}\n`);
}

export async function runKeysPublish(
  config: BrokerConfig,
  out: Writable,
  opts: { partner?: string; jwks?: string } = {},
): Promise<void> {
  const catalog = loadConfiguredCatalog(config);
  const dir = layout(config).keys;
  const protection = configuredKeyProtection(config);
  if ((opts.partner === undefined) !== (opts.jwks === undefined))
    throw new TypeError('keys publish: --partner <id> and --jwks <file> go together');
  const root = await signingRootKey(catalog, dir, protection);
  if (opts.partner !== undefined && opts.jwks !== undefined) {
    const { partner, jwks: file } = opts;
    const jwks = readJwksFile(file);
    const added = await withOperator(config, 'write', (nc) =>
      publishPartnerKeys(nc, catalog, root, partner, file, jwks),
    );
    out.write(added.length === 0 ? `${partner}: no new key\n` : `published ${partner}: ${added.join(', ')}\n`);
    return;
  }
  const written = await withOperator(config, 'write', (nc) => publishDirectory(nc, catalog, dir, root, { protection }));
  out.write(written.length === 0 ? 'key directory up to date\n' : `published: ${written.join(', ')}\n`);
}

/** A partner's public JWK Set file (`keys publish --jwks`). */
function readJwksFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new BrokerError('E_CONFIG_INVALID', `${file}: cannot be read`, { path: file });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BrokerError('E_CONFIG_INVALID', `${file}: not well-formed JSON`, { path: file });
  }
}

/** Which parties a key command names: `--service S | --broker | --gateway | --operator | --all`. */
interface PartyOptions {
  service?: string;
  broker?: boolean;
  /** The partner gateways' own keys (party `gateway`). */
  gateway?: boolean;
  /** The operator commands' audit key (party `operator`), not the operator root key. */
  operator?: boolean;
  all?: boolean;
}

/**
 * The parties the options name; `--all` is every party with a key file in the data dir, and what none of them
 * means when `defaultAll`.
 */
async function selectedParties(
  command: string,
  opts: PartyOptions,
  config: BrokerConfig,
  defaultAll = false,
): Promise<string[]> {
  const given = [
    opts.service !== undefined,
    opts.broker === true,
    opts.gateway === true,
    opts.operator === true,
    opts.all === true,
  ].filter(Boolean).length;
  if (given > 1 || (given === 0 && !defaultAll))
    throw new TypeError(`keys ${command}: give one of --service <id>, --broker, --gateway, --operator, --all`);
  if (given === 0 || opts.all === true)
    return localParties(loadConfiguredCatalog(config), layout(config).keys, configuredKeyProtection(config));
  if (opts.operator === true) return [OPERATOR_AUDIT_ID];
  const party = opts.broker === true ? BROKER_ID : opts.gateway === true ? GATEWAY_AUDIT_ID : (opts.service as string);
  if (!SERVICE_ID_PATTERN.test(party)) throw new TypeError(`keys ${command}: --service must be a service id`);
  return [party];
}

export async function runKeysRotate(
  config: BrokerConfig,
  opts: PartyOptions & { overlap: string },
  out: Writable,
): Promise<void> {
  const overlapMs = parseDuration(opts.overlap);
  await initCrypto();
  const parties = await selectedParties('rotate', opts, config);
  const catalog = loadConfiguredCatalog(config);
  const dir = layout(config).keys;
  const protection = configuredKeyProtection(config);
  const root = await signingRootKey(catalog, dir, protection);
  await withOperator(config, 'write', async (nc) => {
    for (const party of parties) {
      const r = await rotateParty(nc, dir, root, party, overlapMs, Date.now(), protection);
      out.write(`rotated ${party}: current ${r.kid} and ${r.encKid}; previous keys retiring until ${r.notAfter}\n`);
      if (r.tokenKid !== undefined) out.write(`rotated ${party} token key: current ${r.tokenKid}\n`);
      if (r.quarantineVersion !== undefined)
        out.write(`rotated ${party} quarantine key: current version ${r.quarantineVersion}\n`);
    }
  });
}

export async function runKeysPrune(
  config: BrokerConfig,
  opts: PartyOptions & { olderThan: string; force?: boolean },
  out: Writable,
): Promise<void> {
  const olderThanMs = parseDuration(opts.olderThan);
  await initCrypto();
  const parties = await selectedParties('prune', opts, config, true);
  const catalog = loadConfiguredCatalog(config);
  const dir = layout(config).keys;
  const protection = configuredKeyProtection(config);
  const root = await signingRootKey(catalog, dir, protection);
  const destroyed = await withOperator(config, 'write', (nc) =>
    pruneParties(nc, dir, root, parties, {
      olderThanMs,
      retentionMs: ciphertextRetentionMs(config),
      protection,
      ...(opts.force === true ? { force: true } : {}),
    }),
  );
  if (destroyed.size === 0) out.write('no key version retired long enough ago\n');
  for (const [party, kids] of destroyed) out.write(`destroyed ${party}: ${kids.join(', ')}\n`);
}

export async function runKeysRevoke(
  config: BrokerConfig,
  opts: { kid: string; reason: string },
  out: Writable,
): Promise<void> {
  if (opts.reason.trim() === '') throw new TypeError('keys revoke: --reason must not be empty');
  const catalog = loadConfiguredCatalog(config);
  const root = await signingRootKey(catalog, layout(config).keys, configuredKeyProtection(config));
  const r = await withOperator(config, 'write', (nc) => revokeKey(nc, root, opts.kid, opts.reason));
  out.write(`revoked ${opts.kid} at ${r.revokedAt}\n`);
}

/** Adds `phi-broker keys …` to the program; returns the `keys` command so other key commands can join it. */
export function registerKeyCommands(program: Command, configOf: (cmd: Command) => BrokerConfig): Command {
  const keys = program
    .command('keys')
    .description(
      "keys: the directory of every party's public keys, rotation, revocation, protection at rest (docs/keys.md)",
    );
  keys
    .command('list')
    .description("every party's key versions with status, created, retired and revoked dates")
    .option('--json', 'JSON instead of a table')
    .action(async (opts: { json?: boolean }, cmd: Command) => runKeysList(configOf(cmd), opts, process.stdout));
  keys
    .command('publish')
    .description("publish every party's keys from the key files (adds versions the directory lacks)")
    .option('--partner <id>', "publish a partner's client-assertion public keys instead (with --jwks)")
    .option('--jwks <file>', "the partner's public JWK Set (ES384, RS384 or EdDSA keys, as the catalog's jwks)")
    .action(async (opts: { partner?: string; jwks?: string }, cmd: Command) =>
      runKeysPublish(configOf(cmd), process.stdout, opts),
    );
  keys
    .command('rotate')
    .description('make a new signing and encryption key version current; the previous stays valid for the overlap')
    .option('--service <id>', 'the service to rotate')
    .option('--broker', "rotate the broker's keys")
    .option('--gateway', "rotate the partner gateways' own keys (party gateway: the audit-signing key)")
    .option('--operator', "rotate the operator commands' audit key (party operator; not the operator root key)")
    .option('--all', 'rotate every party whose private key file is in the data dir (the daily epoch, docs/keys.md)')
    .option('--overlap <duration>', 'how long the previous version keeps verifying and opening, e.g. 24h, 30m', '24h')
    .action(async (opts: PartyOptions & { overlap: string }, cmd: Command) =>
      runKeysRotate(configOf(cmd), opts, process.stdout),
    );
  keys
    .command('prune')
    .description('destroy the private halves of key versions retired longer ago than --older-than (E_KEY_DESTROYED)')
    .requiredOption('--older-than <duration>', 'retired at least this long ago, e.g. 90d; at least the retention')
    .option('--service <id>', 'prune one service only')
    .option('--broker', "prune the broker's keys only")
    .option('--gateway', "prune the partner gateways' own keys only")
    .option('--operator', "prune the operator commands' audit key only")
    .option('--all', 'every party whose private key file is in the data dir (the default)')
    .option('--force', 'destroy even when --older-than is shorter than the retention of stored ciphertext')
    .action(async (opts: PartyOptions & { olderThan: string; force?: boolean }, cmd: Command) =>
      runKeysPrune(configOf(cmd), opts, process.stdout),
    );
  keys
    .command('revoke')
    .description('revoke one key at once: messages it signed stored from now on are rejected (E_KEY_REVOKED)')
    .requiredOption('--kid <kid>', "the key id, <party>:<sig|enc>:<n>, or a partner's client key id")
    .requiredOption('--reason <text>', 'why (kept in the directory entry; no PHI)')
    .action(async (opts: { kid: string; reason: string }, cmd: Command) =>
      runKeysRevoke(configOf(cmd), opts, process.stdout),
    );
  return keys;
}
