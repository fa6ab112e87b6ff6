// `phi-broker quarantine list|show`: what was rejected, why, and — for an operator holding the broker's
// quarantine key — the sealed original. `list` never decrypts anything; `show --decrypt` prints the
// original input (which may contain PHI) to the operator's own terminal and nowhere else.
import type { NatsConnection } from 'nats';
import { ensureBrokerSecrets } from '../broker/secrets.js';
import { openQuarantineRecord, type QuarantineRecord } from '../broker/quarantine.js';
import type { BrokerConfig } from '../config.js';
import { BROKER_ID } from '../catalog/types.js';
import { Keyring } from '../crypto/keyring.js';
import { readJwks, readServiceKeys } from '../crypto/keys.js';
import { initCrypto } from '../crypto/sodium.js';
import { openEnvelope, parseEnvelope } from '../envelope/open.js';
import { isRawPayload } from '../envelope/types.js';
import { STREAMS } from '../nats/names.js';
import { connectNats, layout, natsUrl } from './runtime.js';

async function readRecords(nc: NatsConnection, limit: number): Promise<QuarantineRecord[]> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(STREAMS.quarantine);
  const out: QuarantineRecord[] = [];
  for (let seq = state.last_seq; seq >= state.first_seq && seq > 0 && out.length < limit; seq--) {
    try {
      const m = await jsm.streams.getMessage(STREAMS.quarantine, { seq });
      out.push(JSON.parse(new TextDecoder().decode(m.data)) as QuarantineRecord);
    } catch {
      // a gap: the record aged out (quarantineMaxAgeMs)
    }
  }
  return out.reverse();
}

/** The original input: the resource inside when it is an envelope the broker can open, else its text. */
function describeOriginal(data: Uint8Array, keysDir: string): string {
  try {
    const env = parseEnvelope(data);
    const keyring = new Keyring(readServiceKeys(keysDir, BROKER_ID), readJwks(keysDir));
    const opened = openEnvelope(env, BROKER_ID, (kekId) => keyring.kekForId(kekId));
    const content = isRawPayload(opened) ? new TextDecoder().decode(opened.raw) : JSON.stringify(opened, null, 2);
    return `envelope ${env.id} from ${env.iss} (${env.typ}):\n${content}`;
  } catch {
    return `not an openable envelope; the bytes as text:\n${new TextDecoder().decode(data)}`;
  }
}

export function formatRecord(r: QuarantineRecord): string {
  return [new Date(r.at).toISOString(), r.id, r.code, r.path ?? '-', r.sender ?? '-', r.type ?? '-', r.messageId ?? '-'].join('  ');
}

export async function runQuarantineList(config: BrokerConfig, opts: { json: boolean; limit: number }): Promise<void> {
  const nc = await connectNats(natsUrl(config), 'phi-broker quarantine');
  try {
    const records = await readRecords(nc, opts.limit);
    for (const r of records) {
      const { sealed: _sealed, ...visible } = r;
      process.stdout.write(`${opts.json ? JSON.stringify(visible) : formatRecord(r)}\n`);
    }
    if (!opts.json) process.stdout.write(`${records.length} record${records.length === 1 ? '' : 's'}\n`);
  } finally {
    await nc.close();
  }
}

export async function runQuarantineShow(config: BrokerConfig, id: string, opts: { decrypt: boolean }): Promise<number> {
  const nc = await connectNats(natsUrl(config), 'phi-broker quarantine');
  try {
    const record = (await readRecords(nc, Number.MAX_SAFE_INTEGER)).find((r) => r.id === id);
    if (record === undefined) {
      process.stderr.write(`phi-broker: no quarantine record ${id}\n`);
      return 1;
    }
    process.stdout.write(`${formatRecord(record)}\n${record.message}\n`);
    if (opts.decrypt) {
      await initCrypto();
      const keysDir = layout(config).keys;
      const original = openQuarantineRecord(record, ensureBrokerSecrets(keysDir).quarantineKey);
      process.stdout.write(`subject: ${original.subject}\n${describeOriginal(original.data, keysDir)}\n`);
    }
    return 0;
  } finally {
    await nc.close();
  }
}
