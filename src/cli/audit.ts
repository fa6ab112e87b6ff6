// `phi-broker audit verify|query|export|witness`: the auditor's tools over PHI_AUDIT (docs/audit.md).
//   verify  walks every chain and checkpoint, compares the chains with their witnessed heads (PHI_AUDIT_WITNESS
//           and `--witness <file>`) and the streams' settings with the configuration; exit 1 on any problem
//   witness appends the current signed chain heads to a file the operator keeps outside NATS (JSON lines)
//   query   prints the AuditEvents that match (text, or NDJSON of FHIR AuditEvent JSON)
//   export  writes a FHIR R4 Bundle (type collection) of the AuditEvents in a time window
// The records hold no PHI (patients appear as the broker's keyed pseudonym): `--patient Patient/<id>` is turned
// into that pseudonym here, with the broker's secrets from the data dir, and never leaves this process.
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import type { AuditEvent } from 'fhir/r4.js';
import type { NatsConnection } from 'nats';
import {
  OUTCOME_NAMES,
  auditBundle,
  formatEventLine,
  matchesFilter,
  parseTime,
  type AuditFilter,
} from '../audit/query.js';
import { auditStreamState, readAuditRecords } from '../audit/read.js';
import { decodeRecord } from '../audit/record.js';
import { verifyAuditRecords, type KeyRefusal, type StoredRecord, type VerifyReport } from '../audit/verify.js';
import { auditStreamConfig, streamConfigOf, witnessStreamConfig } from '../audit/setup.js';
import { streamSettingProblems, type SettingProblem } from '../audit/stream-check.js';
import {
  bestHeads,
  compareWithWitness,
  decodeWitnessHead,
  encodeWitnessHead,
  parseWitnessLines,
  type WitnessFinding,
  type WitnessHead,
} from '../audit/witness.js';
import { existingBrokerSecrets } from '../runtime/broker-secrets.js';
import { BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID } from '../wire/ids.js';
import { BrokerError } from '../wire/errors.js';
import type { BrokerConfig } from '../config/config.js';
import { recordsFromJwks } from '../crypto/jwk.js';
import { fromBase64url } from '../crypto/base64url.js';
import { partyOfKid, signedWhileValid, type DirectoryEntry } from '../crypto/key-directory.js';
import { openKeyDirectoryBucket, readDirectory } from '../nats/key-directory.js';
import { directoryRootKey } from '../runtime/key-directory.js';
import { configuredKeyProtection } from '../runtime/key-protection.js';
import { readJwks } from '../runtime/key-files.js';
import { chainWriter, STREAMS, type ChainWriter } from '../wire/names.js';
import { canonicalPatientRef } from '../registry/patient-key.js';
import { patientPseudonym } from '../registry/pseudonym.js';
import { connectOperator, layout, loadConfiguredCatalog } from '../runtime/data-dir.js';
import { recordOperatorAction } from '../runtime/operator-audit.js';

export interface AuditIo {
  readonly out: Writable;
  readonly err: Writable;
}

/** PHI_AUDIT is read as the auditor or operator (data-dir.ts operatorIdentity); another `--stream` (a copy) as the admin, which may read any. */
async function withNats<T>(config: BrokerConfig, stream: string, run: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectOperator(config, 'phi-broker audit', stream === STREAMS.audit ? 'read' : 'admin');
  try {
    return await run(nc);
  } finally {
    await nc.close();
  }
}

/** Which key-space party signs a chain's checkpoints (src/wire/names.ts chainWriter). */
const CHAIN_SIGNER: Readonly<Record<ChainWriter, string>> = {
  broker: BROKER_ID,
  gateway: GATEWAY_AUDIT_ID,
  operator: OPERATOR_AUDIT_ID,
};

/** The audit-signing keys: the public half for a kid that may sign a chain's checkpoints at a time, or why not. */
interface AuditKeys {
  readonly signingKey: (kid: string, chain: string, atMs?: number) => Uint8Array | undefined;
  readonly refusal: (kid: string, chain: string, atMs: number) => KeyRefusal | undefined;
  /** What judged a writer's keys (reported, so a verify without the directory says it did not check dates). */
  readonly sourceOf: (writer: string) => KeySource;
}

/** Where `audit verify` took a chain writer's keys from. */
export interface KeySource {
  readonly party: string;
  /** `directory`: its signed key directory entry, validity at each checkpoint's time checked; `jwks`: any key a JWKS file lists for it. */
  readonly source: 'directory' | 'jwks';
  readonly file?: string;
}

/** Every verified key directory entry, or none when the data dir has no directory (no root key, no bucket). */
async function directoryEntries(config: BrokerConfig, nc: NatsConnection): Promise<Map<string, DirectoryEntry>> {
  const keysDir = layout(config).keys;
  let root;
  try {
    ({ root } = await directoryRootKey(loadConfiguredCatalog(config), keysDir, configuredKeyProtection(config)));
  } catch (err) {
    if (err instanceof BrokerError && err.code === 'E_SETUP_MISSING') return new Map();
    throw err;
  }
  let kv;
  try {
    kv = await openKeyDirectoryBucket(nc);
  } catch {
    return new Map(); // no phi_keys bucket: a deployment without the directory
  }
  return new Map([...(await readDirectory(kv, root))].map(([party, s]) => [party, s.entry]));
}

/**
 * The audit-signing keys. A key verifies a chain's checkpoints only when it belongs to that chain's writer (a
 * gateway's key never vouches for a broker's chain). A writer with a key directory entry is judged by it: the key
 * must have been valid when the checkpoint was stored (docs/keys.md "Signatures made in the past"). Otherwise, and
 * with `--jwks <file>`, any signing key the JWKS (default the data dir's keys/jwks.json) lists for the writer.
 */
async function auditSigningKeys(
  config: BrokerConfig,
  nc: NatsConnection,
  jwksPath: string | undefined,
): Promise<AuditKeys> {
  const jwksFile = jwksPath ?? join(layout(config).keys, 'jwks.json');
  const records =
    jwksPath === undefined
      ? readJwks(layout(config).keys)
      : recordsFromJwks(jwksPath, JSON.parse(readFileSync(jwksPath, 'utf8')) as unknown);
  const signers = new Set(Object.values(CHAIN_SIGNER));
  const listed = new Map(
    records.filter((r) => signers.has(r.service) && r.use === 'sig').map((r) => [r.kid, r] as const),
  );
  const entries = jwksPath === undefined ? await directoryEntries(config, nc) : new Map<string, DirectoryEntry>();
  const judge = (kid: string, chain: string, atMs?: number): { key?: Uint8Array; refusal?: KeyRefusal } => {
    const writer = CHAIN_SIGNER[chainWriter(chain)];
    const unknown = (message: string): { refusal: KeyRefusal } => ({ refusal: { code: 'E_KEY_UNKNOWN', message } });
    if (partyOfKid(kid) !== writer) return unknown(`not a key of the chain's writer (${writer})`);
    const entry = entries.get(writer);
    if (entry === undefined) {
      const r = listed.get(kid);
      return r === undefined ? unknown(`not a known key of ${writer}`) : { key: r.publicKey };
    }
    const k = entry.keys.find((x) => x.jwk.kid === kid && x.jwk.use === 'sig');
    if (k === undefined) return unknown(`the key directory entry of ${writer} holds no such key`);
    if (atMs !== undefined) {
      const valid = signedWhileValid(k, atMs);
      const at = new Date(atMs).toISOString();
      if (!valid.ok)
        return {
          refusal:
            valid.code === 'E_KEY_REVOKED'
              ? {
                  code: valid.code,
                  message: `revoked at ${k.revokedAt ?? '?'}, before the checkpoint was stored (${at})`,
                }
              : { code: valid.code, message: `no longer valid at ${at} (retired ${k.retired ?? k.notAfter ?? '?'})` },
        };
    }
    const key = fromBase64url(k.jwk.x);
    return key === undefined ? unknown('its public key is malformed') : { key };
  };
  return {
    signingKey: (kid, chain, atMs) => judge(kid, chain, atMs).key,
    refusal: (kid, chain, atMs) => judge(kid, chain, atMs).refusal,
    sourceOf: (party) =>
      entries.has(party) ? { party, source: 'directory' } : { party, source: 'jwks', file: jwksFile },
  };
}

/** What `audit verify` found: the chain walk, the streams' settings and the comparison with witnessed heads. */
export interface AuditVerifyReport extends VerifyReport {
  /** Chain walk, settings and witness all clean (warnings allowed). */
  readonly ok: boolean;
  readonly chainsOk: boolean;
  readonly settings: readonly SettingProblem[];
  readonly witness: readonly WitnessFinding[];
  /** Lines of a `--witness` file that are not witnessed heads (1-based). */
  readonly badWitnessLines: readonly number[];
  /** For each party whose chains were read, where its checkpoint keys came from. */
  readonly keySources: readonly KeySource[];
}

export function formatReport(report: AuditVerifyReport): string {
  const lines = report.chains.map((c) => {
    const state = c.closed ? 'closed' : `open, ${c.unsealed} record(s) after the last checkpoint`;
    return `chain ${c.chain}: records ${c.first}..${c.last} (${c.records} records, ${c.events} events, ${c.checkpoints} checkpoints), ${state}`;
  });
  for (const p of report.settings) lines.push(`WEAKENED: ${p.message}`);
  for (const f of report.witness)
    lines.push(`${f.severity === 'problem' ? f.kind.toUpperCase() : 'warning'}: ${f.message}`);
  for (const n of report.badWitnessLines) lines.push(`WITNESS FILE: line ${n} is not a witnessed head`);
  for (const k of report.keySources)
    lines.push(
      k.source === 'directory'
        ? `keys of ${k.party}: its key directory entry (each checkpoint's key valid when it was stored)`
        : `warning: keys of ${k.party}: any signing key ${k.file ?? 'the JWKS'} lists for it (no key directory entry: retirement and revocation dates not checked)`,
    );
  const b = report.broken;
  if (b !== undefined)
    lines.push(
      `BROKEN: chain ${b.chain ?? '?'} seq ${b.seq ?? '?'} (${b.kind}; stream sequence ${b.streamSeq}): ${b.message}`,
    );
  else if (report.ok) lines.push(`ok: ${report.chains.length} chain(s), ${report.records} record(s) verified`);
  else
    lines.push(
      `FAILED: ${report.chains.length} chain(s), ${report.records} record(s) read; ${report.settings.length + report.witness.filter((f) => f.severity === 'problem').length + report.badWitnessLines.length} problem(s) above`,
    );
  return `${lines.join('\n')}\n`;
}

/** Every message of a stream (witnessed heads); none when the stream does not exist. */
async function readAll(nc: NatsConnection, stream: string): Promise<StoredRecord[]> {
  const jsm = await nc.jetstreamManager();
  if ((await streamConfigOf(jsm, stream)) === undefined) return [];
  const out: StoredRecord[] = [];
  for await (const r of readAuditRecords(nc, { stream })) out.push(r);
  return out;
}

function headsOf(stored: readonly StoredRecord[]): WitnessHead[] {
  return stored.flatMap((r) => decodeWitnessHead(Buffer.from(r.data).toString('utf8')) ?? []);
}

export async function runAuditVerify(
  config: BrokerConfig,
  opts: { stream: string; json: boolean; jwks?: string; witness?: string },
  io: AuditIo,
): Promise<number> {
  const file = opts.witness === undefined ? undefined : parseWitnessLines(readFileSync(opts.witness, 'utf8'));
  return withNats(config, opts.stream, async (nc) => {
    const { signingKey, refusal, sourceOf } = await auditSigningKeys(config, nc, opts.jwks);
    const { firstSeq } = await auditStreamState(nc, opts.stream);
    const records: StoredRecord[] = [];
    for await (const r of readAuditRecords(nc, { stream: opts.stream })) records.push(r);
    // A stream whose first sequence is above 1 lost its oldest records to retention (deny_delete and
    // deny_purge leave no other way): chains may then begin mid-way.
    const walk = verifyAuditRecords(records, { signingKey, refusal, agedOut: firstSeq > 1 });
    const settings: SettingProblem[] = [];
    const heads: WitnessHead[] = [...(file?.heads ?? [])];
    // The live stream is checked against the configuration and its witness stream; a copy (`--stream`) only
    // against the witness file.
    if (opts.stream === STREAMS.audit) {
      const jsm = await nc.jetstreamManager();
      const streamSettings = {
        maxAgeMs: config.auditMaxAgeMs,
        duplicateWindowMs: config.duplicateWindowMs,
        replicas: config.replicas,
      };
      for (const wanted of [auditStreamConfig(streamSettings), witnessStreamConfig(streamSettings)]) {
        const name = wanted.name as string;
        settings.push(...streamSettingProblems(name, await streamConfigOf(jsm, name), wanted));
      }
      heads.push(...headsOf(await readAll(nc, STREAMS.auditWitness)));
    }
    const witness = compareWithWitness(records, walk.chains, heads, {
      signingKey,
      agedOutBefore: Date.now() - config.auditMaxAgeMs,
    });
    const badWitnessLines = file?.badLines ?? [];
    const report: AuditVerifyReport = {
      ...walk,
      chainsOk: walk.ok,
      ok:
        walk.ok &&
        settings.length === 0 &&
        badWitnessLines.length === 0 &&
        witness.every((f) => f.severity === 'warning'),
      settings,
      witness,
      badWitnessLines,
      keySources: [...new Set(walk.chains.map((c) => CHAIN_SIGNER[chainWriter(c.chain)]))].sort().map(sourceOf),
    };
    io.out.write(opts.json ? `${JSON.stringify(report)}\n` : formatReport(report));
    return report.ok ? 0 : 1;
  });
}

/**
 * `audit witness --out <file>`: appends the newest verified head of every chain in PHI_AUDIT_WITNESS to the file
 * (JSON lines, one WitnessHead each), skipping heads the file already holds. Exit 1 when there is no head to
 * witness or a stored head does not verify (it is not copied).
 */
export async function runAuditWitness(
  config: BrokerConfig,
  opts: { out: string; jwks?: string },
  io: AuditIo,
): Promise<number> {
  const have = existsSync(opts.out) ? parseWitnessLines(readFileSync(opts.out, 'utf8')).heads : [];
  const known = new Set(have.map((h) => `${h.chain}\n${h.head}\n${h.sig}`));
  return withNats(config, STREAMS.audit, async (nc) => {
    const { signingKey } = await auditSigningKeys(config, nc, opts.jwks);
    const { best, bad } = bestHeads(headsOf(await readAll(nc, STREAMS.auditWitness)), signingKey);
    for (const h of bad)
      io.err.write(`a witnessed head of chain ${h.chain} (head ${h.head}) does not verify; not copied\n`);
    if (best.size === 0) {
      io.err.write(`no verified head in ${STREAMS.auditWitness}: nothing witnessed\n`);
      return 1;
    }
    const fresh = [...best.values()].filter((h) => !known.has(`${h.chain}\n${h.head}\n${h.sig}`));
    if (fresh.length > 0)
      appendFileSync(opts.out, fresh.map((h) => `${encodeWitnessHead(h)}\n`).join(''), { mode: 0o644 });
    for (const h of [...best.values()].sort((a, b) => a.chain.localeCompare(b.chain)))
      io.out.write(
        `chain ${h.chain}: head ${h.head}${h.final === true ? ' (final)' : ''} at ${new Date(h.at).toISOString()}\n`,
      );
    io.out.write(`witnessed ${best.size} chain head(s) in ${opts.out} (${fresh.length} new)\n`);
    return bad.length === 0 ? 0 : 1;
  });
}

export interface QueryOptions {
  readonly patient?: string;
  readonly service?: string;
  readonly since?: string;
  readonly until?: string;
  readonly outcome?: string;
  readonly stream: string;
}

/** Turns the command's options into a filter; `--patient` becomes the broker's pseudonym of that patient. */
export async function auditFilter(config: BrokerConfig, q: QueryOptions, nowMs: number): Promise<AuditFilter> {
  const time = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const ms = parseTime(text, nowMs);
    if (ms === undefined)
      throw new BrokerError(
        'E_USAGE',
        `${flag}: expected an ISO 8601 date or time, or a duration such as 90m, 24h, 7d`,
        {
          path: flag,
        },
      );
    return ms;
  };
  let patientPseudonymValue: string | undefined;
  if (q.patient !== undefined) {
    // The catalog's canonical patient rule (subjects/patients.yaml), as for the registry: one pseudonym per patient.
    const ref = canonicalPatientRef(q.patient, loadConfiguredCatalog(config).patients);
    patientPseudonymValue = patientPseudonym(await existingBrokerSecrets(config), ref);
  }
  const outcomes = q.outcome === undefined ? undefined : OUTCOME_NAMES[q.outcome];
  if (q.outcome !== undefined && outcomes === undefined)
    throw new BrokerError('E_USAGE', '--outcome: expected success, failure, 0, 4, 8 or 12', { path: '--outcome' });
  if (q.service !== undefined && q.service !== BROKER_ID && !loadConfiguredCatalog(config).services.has(q.service))
    throw new BrokerError('E_USAGE', '--service: not a service of the catalog (subjects/services.yaml)', {
      path: '--service',
    });
  const sinceMs = time('--since', q.since);
  const untilMs = time('--until', q.until);
  return {
    ...(patientPseudonymValue === undefined ? {} : { patientPseudonym: patientPseudonymValue }),
    ...(q.service === undefined ? {} : { service: q.service }),
    ...(sinceMs === undefined ? {} : { sinceMs }),
    ...(untilMs === undefined ? {} : { untilMs }),
    ...(outcomes === undefined ? {} : { outcomes }),
  };
}

/** The query or export as an operator action (docs/audit.md): recorded before any event is read out. */
async function auditSearch(
  config: BrokerConfig,
  nc: NatsConnection,
  action: 'audit-query' | 'audit-export',
  q: QueryOptions,
  filter: AuditFilter,
): Promise<void> {
  const given = (name: string, value: string | undefined): [string, string][] =>
    value === undefined ? [] : [[name, value]];
  await recordOperatorAction(config, nc, q.stream === STREAMS.audit ? 'read' : 'admin', {
    action,
    ...(filter.patientPseudonym === undefined ? {} : { patientPseudonym: filter.patientPseudonym }),
    details: [
      ...given('service', q.service),
      ...given('since', filter.sinceMs === undefined ? undefined : new Date(filter.sinceMs).toISOString()),
      ...given('until', filter.untilMs === undefined ? undefined : new Date(filter.untilMs).toISOString()),
      ...given('outcome', q.outcome),
      ['stream', q.stream],
    ],
  });
}

async function* matchingEvents(nc: NatsConnection, stream: string, filter: AuditFilter): AsyncGenerator<AuditEvent> {
  // A record is stored after its events are recorded, so starting the read at `since` misses none.
  for await (const r of readAuditRecords(nc, {
    stream,
    ...(filter.sinceMs === undefined ? {} : { sinceMs: filter.sinceMs }),
  })) {
    for (const e of decodeRecord(r.data)?.events ?? []) if (matchesFilter(e, filter)) yield e;
  }
}

export async function runAuditQuery(
  config: BrokerConfig,
  q: QueryOptions & { json: boolean },
  io: AuditIo,
): Promise<number> {
  const filter = await auditFilter(config, q, Date.now());
  return withNats(config, q.stream, async (nc) => {
    await auditSearch(config, nc, 'audit-query', q, filter);
    let n = 0;
    for await (const e of matchingEvents(nc, q.stream, filter)) {
      io.out.write(`${q.json ? JSON.stringify(e) : formatEventLine(e)}\n`);
      n += 1;
    }
    if (!q.json) io.err.write(`${n} event(s)\n`);
    return 0;
  });
}

export async function runAuditExport(
  config: BrokerConfig,
  q: QueryOptions & { out: string },
  io: AuditIo,
): Promise<number> {
  const filter = await auditFilter(config, q, Date.now());
  return withNats(config, q.stream, async (nc) => {
    await auditSearch(config, nc, 'audit-export', q, filter);
    const events: AuditEvent[] = [];
    for await (const e of matchingEvents(nc, q.stream, filter)) events.push(e);
    writeFileSync(q.out, `${JSON.stringify(auditBundle(events, randomUUID(), Date.now()), null, 2)}\n`, {
      mode: 0o600,
    });
    io.out.write(`wrote ${events.length} AuditEvent(s) to ${q.out}\n`);
    return 0;
  });
}

/** Registers `audit verify|query|export|witness` under `audit`; `configOf` resolves the global options. */
export function registerAuditCommands(audit: Command, configOf: (cmd: Command) => BrokerConfig): void {
  const io: AuditIo = { out: process.stdout, err: process.stderr };
  const streamOption = (): Option =>
    new Option('--stream <name>', 'the audit stream (a copy, for instance)').default(STREAMS.audit);
  const filters = (cmd: Command): Command =>
    cmd
      .option('--patient <ref>', 'events about this patient (Patient/<id>; matched by the broker pseudonym)')
      .option('--service <id>', 'events a service took part in')
      .option('--since <time>', 'recorded at or after (ISO 8601, or 90m / 24h / 7d ago)')
      .option('--until <time>', 'recorded before (ISO 8601, or a duration ago)')
      .addOption(
        new Option('--outcome <outcome>', 'success, failure, or an AuditEvent.outcome code').choices(
          Object.keys(OUTCOME_NAMES),
        ),
      )
      .addOption(streamOption());
  audit
    .command('verify')
    .description(
      'walk every hash chain and signed checkpoint in PHI_AUDIT, compare them with their witnessed heads and the streams with their configured settings (exit 1 on any problem)',
    )
    .option('--json', 'the report as JSON')
    .option('--jwks <file>', "the broker's public keys (default: <data-dir>/keys/jwks.json)")
    .option('--witness <file>', 'also compare the chains with the heads in this witness file (audit witness --out)')
    .addOption(streamOption())
    .action(async (opts: { json?: boolean; jwks?: string; witness?: string; stream: string }, cmd: Command) => {
      process.exitCode = await runAuditVerify(
        configOf(cmd),
        {
          stream: opts.stream,
          json: opts.json === true,
          ...(opts.jwks === undefined ? {} : { jwks: opts.jwks }),
          ...(opts.witness === undefined ? {} : { witness: opts.witness }),
        },
        io,
      );
    });
  audit
    .command('witness')
    .description('append the current signed head of every audit chain to a file kept outside NATS (JSON lines)')
    .requiredOption('--out <file>', 'the witness file to append to')
    .option('--jwks <file>', "the broker's public keys (default: <data-dir>/keys/jwks.json)")
    .action(async (opts: { out: string; jwks?: string }, cmd: Command) => {
      process.exitCode = await runAuditWitness(
        configOf(cmd),
        { out: opts.out, ...(opts.jwks === undefined ? {} : { jwks: opts.jwks }) },
        io,
      );
    });
  filters(
    audit
      .command('query')
      .description('print matching AuditEvents (text, or NDJSON of FHIR AuditEvent JSON)')
      .option('--json', 'one FHIR AuditEvent JSON per line'),
  ).action(async (opts: QueryOptions & { json?: boolean }, cmd: Command) => {
    process.exitCode = await runAuditQuery(configOf(cmd), { ...opts, json: opts.json === true }, io);
  });
  filters(
    audit
      .command('export')
      .description('write matching AuditEvents as a FHIR R4 Bundle (collection) for an auditor')
      .requiredOption('--out <file>', 'the Bundle JSON file to write'),
  ).action(async (opts: QueryOptions & { out: string }, cmd: Command) => {
    process.exitCode = await runAuditExport(configOf(cmd), opts, io);
  });
}
