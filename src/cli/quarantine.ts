// `phi-broker quarantine list|show`: what was rejected, why, and — for an operator holding the broker's
// quarantine key version the record names — the sealed original. `list` never decrypts anything; `show --decrypt`
// prints the original input (which may contain PHI) to the operator's own terminal and nowhere else.
import type { Writable } from 'node:stream';
import type { NatsConnection } from 'nats';
import { existingBrokerSecrets } from '../runtime/broker-secrets.js';
import {
  decodeRecordHeader,
  openQuarantine,
  quarantineKeyVersion,
  type QuarantineRecord,
} from '../broker/quarantine.js';
import { quarantineKeyOf } from '../crypto/broker-secrets.js';
import type { BrokerConfig } from '../config/config.js';
import { BROKER_ID } from '../wire/ids.js';
import { Keyring } from '../crypto/keyring.js';
import { openServiceKeyVersions, readJwks } from '../runtime/key-files.js';
import { configuredKeyProtection } from '../runtime/key-protection.js';
import type { PublicKeyRecord, ServiceKeys } from '../crypto/keys.js';
import { initCrypto } from '../crypto/sodium.js';
import { openEnvelope, parseEnvelope } from '../envelope/open.js';
import { isRawPayload } from '../envelope/types.js';
import { HEADERS, STREAMS } from '../wire/names.js';
import { recordOperatorAction } from '../runtime/operator-audit.js';
import { connectOperator, layout } from '../runtime/data-dir.js';

interface StoredPart {
  readonly record: QuarantineRecord;
  readonly index: number;
  readonly data: Uint8Array;
}

/** Every quarantine message from the newest back, until `limit` records are complete (first part seen). */
async function readParts(
  nc: NatsConnection,
  limit: number,
  unreadable: { count: number },
  recordId?: string,
): Promise<StoredPart[]> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(STREAMS.quarantine);
  const out: StoredPart[] = [];
  let complete = 0;
  for (let seq = state.last_seq; seq >= state.first_seq && seq > 0 && complete < limit; seq--) {
    let m;
    try {
      m = await jsm.streams.getMessage(STREAMS.quarantine, { seq });
    } catch {
      continue; // a gap: the record aged out (quarantineMaxAgeMs)
    }
    // Anything that is not a broker record (another client wrote to phi.quarantine.*) is skipped, counted.
    let record: QuarantineRecord;
    try {
      record = decodeRecordHeader(m.header.get(HEADERS.record));
    } catch {
      unreadable.count += 1;
      continue;
    }
    if (recordId !== undefined && record.id !== recordId) continue;
    const index = Number.parseInt(m.header.get(HEADERS.part).split('/')[0] ?? '1', 10);
    out.push({ record, index, data: m.data });
    if (index <= 1) complete += 1;
  }
  return out.reverse();
}

/** The original input: the resource inside when it is an envelope a held broker key version opens, else its text. */
function describeOriginal(data: Uint8Array, keys: readonly ServiceKeys[], peers: PublicKeyRecord[]): string {
  try {
    const env = parseEnvelope(data);
    const keyring = new Keyring(keys, peers);
    const opened = openEnvelope(env, BROKER_ID, (kekId) => keyring.kekForId(kekId));
    const content = isRawPayload(opened) ? new TextDecoder().decode(opened.raw) : JSON.stringify(opened, null, 2);
    return `envelope ${env.id} from ${env.iss} (${env.typ}):\n${content}`;
  } catch {
    return `not an openable envelope; the bytes as text:\n${new TextDecoder().decode(data)}`;
  }
}

export function formatRecord(r: QuarantineRecord): string {
  return [
    new Date(r.at).toISOString(),
    r.id,
    r.code,
    r.path ?? '-',
    r.sender ?? '-',
    r.type ?? '-',
    r.messageId ?? '-',
  ].join('  ');
}

export async function runQuarantineList(config: BrokerConfig, opts: { json: boolean; limit: number }): Promise<void> {
  const nc = await connectOperator(config, 'phi-broker quarantine', 'read');
  try {
    const unreadable = { count: 0 };
    const records = (await readParts(nc, opts.limit, unreadable)).filter((p) => p.index === 1).map((p) => p.record);
    for (const r of records) process.stdout.write(`${opts.json ? JSON.stringify(r) : formatRecord(r)}\n`);
    if (!opts.json) process.stdout.write(`${records.length} record${records.length === 1 ? '' : 's'}\n`);
    if (unreadable.count > 0)
      process.stderr.write(
        `phi-broker: skipped ${unreadable.count} message(s) in PHI_QUARANTINE that are not broker records\n`,
      );
  } finally {
    await nc.close();
  }
}

/**
 * One record's facts and, with `decrypt`, its original opened with the quarantine key version it names: a version
 * `keys prune` destroyed is E_KEY_DESTROYED, thrown after the facts are written.
 */
export async function runQuarantineShow(
  config: BrokerConfig,
  id: string,
  opts: { decrypt: boolean },
  out: Writable = process.stdout,
): Promise<number> {
  const nc = await connectOperator(config, 'phi-broker quarantine', 'read');
  try {
    const parts = (await readParts(nc, 1, { count: 0 }, id)).sort((a, b) => a.index - b.index);
    const record = parts[0]?.record;
    if (record === undefined) {
      process.stderr.write(`phi-broker: no quarantine record ${id}\n`);
      return 1;
    }
    out.write(`${formatRecord(record)}\n${record.message}\n`);
    if (record.parts > 0) out.write(`sealed with quarantine key version ${quarantineKeyVersion(record)}\n`);
    if (opts.decrypt && record.parts === 0) {
      out.write(`the original was not kept (${record.cause ?? record.code}, ${record.size ?? 0} bytes)\n`);
    } else if (opts.decrypt) {
      await initCrypto();
      const keysDir = layout(config).keys;
      const key = quarantineKeyOf(await existingBrokerSecrets(config), quarantineKeyVersion(record));
      const original = openQuarantine(
        record,
        parts.map((p) => p.data),
        key,
      );
      // Every broker key version held: an envelope sealed to a retired one opens until `keys prune`.
      const brokerKeys = await openServiceKeyVersions(keysDir, BROKER_ID, configuredKeyProtection(config));
      // The original may hold PHI: recorded before it is shown.
      await recordOperatorAction(config, nc, 'read', {
        action: 'quarantine-decrypt',
        object: { kind: 'quarantine-record', id: record.id },
        details: [
          ['code', record.code],
          ...(record.sender === undefined ? [] : [['sender', record.sender] as [string, string]]),
        ],
      });
      out.write(`subject: ${original.subject}\n${describeOriginal(original.data, brokerKeys, readJwks(keysDir))}\n`);
    }
    return 0;
  } finally {
    await nc.close();
  }
}
