// Storage limits over a real nats-server (docs/broker.md "Storage limits"): provisioned streams carry the configured
// max_bytes and discard policy; a sender over its quarantine quota gets E_QUARANTINE_QUOTA receipts and only small
// records are stored; another sender is unaffected; the alert fires once; a full quarantine answers E_QUARANTINE_FULL.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { JetStreamManager, NatsConnection } from 'nats';
import { DiscardPolicy } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord } from '../../src/audit/record.js';
import { decodeRecordHeader } from '../../src/broker/quarantine.js';
import { isStreamFull } from '../../src/nats/jetstream-errors.js';
import { ensureBrokerInfrastructure, streamSettings } from '../../src/nats/setup.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { HEADERS, KV_BUCKETS, STREAMS } from '../../src/wire/names.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);

const MiB = 1024 * 1024;
const QUOTA_BYTES = 8 * 1024;
const LIMITS = {
  ingestMaxBytes: 8 * MiB,
  deliverMaxBytes: 9 * MiB,
  quarantineMaxBytes: 2 * MiB,
  receiptMaxBytes: 3 * MiB,
  disclosureMaxBytes: 4 * MiB,
  seenMaxBytes: 5 * MiB,
};
/** A rejected input (no resourceType: E_NOT_FHIR) of about 2 KiB, so the byte quota admits three or four. */
const BAD = { family: 'Zephyrine', note: 'x'.repeat(2000) };

let stack: TestStack;
let tap: NatsConnection;
let jsm: JetStreamManager;
let registration: PhiClient;
let ehr: PhiClient;
const alerts: string[] = [];

beforeAll(async () => {
  stack = await startTestStack({
    config: {
      ...LIMITS,
      quarantineSenderMaxBytes: QUOTA_BYTES,
      quarantineSenderMaxMessages: 1000,
      // An hour's window: the bucket refills by under 3 bytes a second, nothing within this test.
      quarantineSenderWindowMs: 60 * 60_000,
    },
  });
  tap = await stack.connect('tap');
  tap.subscribe('phi.alert.quarantine-quota', { callback: (_e, m) => alerts.push(m.subject) });
  await tap.flush();
  jsm = await tap.jetstreamManager();
  registration = await stack.client('registration');
  ehr = await stack.client('ehr');
});

afterAll(async () => {
  await stack?.stop();
});

/** Every message of PHI_QUARANTINE on `subject`: its record and its payload size. */
async function quarantined(subject: string): Promise<{ id: string; code: string; parts: number; bytes: number }[]> {
  const { state } = await jsm.streams.info(STREAMS.quarantine);
  const out: { id: string; code: string; parts: number; bytes: number }[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && seq > 0; seq++) {
    const m = await jsm.streams.getMessage(STREAMS.quarantine, { seq });
    if (m.subject !== subject) continue;
    const r = decodeRecordHeader(m.header.get(HEADERS.record));
    out.push({ id: r.id, code: r.code, parts: r.parts, bytes: m.data.byteLength });
  }
  return out;
}

/** How many times the AuditEvents of PHI_AUDIT name `code` (the AuditEvent JSON carries the code of a rejection). */
async function auditedWith(code: string): Promise<number> {
  const { state } = await jsm.streams.info(STREAMS.audit);
  let n = 0;
  for (let seq = state.first_seq; seq <= state.last_seq && seq > 0; seq++) {
    const m = await jsm.streams.getMessage(STREAMS.audit, { seq });
    n += JSON.stringify(decodeRecord(m.data)?.events ?? []).split(code).length - 1;
  }
  return n;
}

describe('provisioned streams', () => {
  it('carry the configured max_bytes and discard policy; the audit streams stay unlimited', async () => {
    const want: [string, number, DiscardPolicy][] = [
      [STREAMS.ingest, LIMITS.ingestMaxBytes, DiscardPolicy.New],
      [STREAMS.deliver, LIMITS.deliverMaxBytes, DiscardPolicy.New],
      [STREAMS.quarantine, LIMITS.quarantineMaxBytes, DiscardPolicy.New],
      [STREAMS.receipts, LIMITS.receiptMaxBytes, DiscardPolicy.Old],
      [STREAMS.disclosures, LIMITS.disclosureMaxBytes, DiscardPolicy.New],
      [`KV_${KV_BUCKETS.seen}`, LIMITS.seenMaxBytes, DiscardPolicy.New],
    ];
    for (const [name, maxBytes, discard] of want) {
      const { config } = await jsm.streams.info(name);
      expect({ name, max_bytes: config.max_bytes, discard: config.discard }).toEqual({
        name,
        max_bytes: maxBytes,
        discard,
      });
    }
    expect((await jsm.streams.info(STREAMS.audit)).config.max_bytes).toBe(-1);
  });
});

describe('per-sender quarantine quota', () => {
  it('over its quota a sender gets E_QUARANTINE_QUOTA, only small records are stored, and the alert fires once', async () => {
    const codes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await registration.publish(BAD);
      expect(r.status).toBe('rejected');
      if (r.status === 'rejected') {
        codes.push(r.code);
        expect(r.message).not.toContain('Zephyrine');
      }
    }
    const kept = codes.filter((c) => c === 'E_NOT_FHIR').length;
    // Whole inputs first, then only quota answers: the byte quota admits 2 to 4 of these ~2 KiB inputs.
    expect(kept).toBeGreaterThanOrEqual(2);
    expect(kept).toBeLessThanOrEqual(4);
    expect(codes).toEqual([...Array(kept).fill('E_NOT_FHIR'), ...Array(8 - kept).fill('E_QUARANTINE_QUOTA')]);

    const stored = await quarantined('phi.quarantine.registration');
    expect(stored.map((s) => s.code)).toEqual(codes);
    const whole = stored.filter((s) => s.parts > 0);
    const small = stored.filter((s) => s.parts === 0);
    expect(small.every((s) => s.bytes === 0)).toBe(true);
    const oneMessage = Math.max(...whole.map((s) => s.bytes));
    expect(whole.reduce((n, s) => n + s.bytes, 0)).toBeLessThanOrEqual(QUOTA_BYTES + oneMessage);

    // The operator's view of a small record: its facts, and that the original was not kept.
    const { stdout } = await run(
      process.execPath,
      [
        join(ROOT, 'dist/src/cli/main.js'),
        'quarantine',
        'show',
        small[0]?.id ?? '',
        '--decrypt',
        '--data-dir',
        stack.config.dataDir,
      ],
      { env: { ...process.env, ...stack.env } },
    );
    expect(stdout).toContain('E_QUARANTINE_QUOTA');
    expect(stdout).toMatch(/the original was not kept \(E_NOT_FHIR, \d+ bytes\)/);

    // Another sender has its own quota.
    const other = await ehr.publish(BAD);
    expect(other).toMatchObject({ status: 'rejected', code: 'E_NOT_FHIR' });

    // The rejections are audited with the code, and the alert (published as the audit trail stores the facts,
    // before each receipt) fired for the first quota answer only.
    await stack.logs.until(
      (r) => r['event'] === 'audit.alert' && r['rule'] === 'quarantine-quota' && r['service'] === 'registration',
      'the quarantine-quota alert log line',
    );
    await tap.flush();
    expect(alerts).toEqual(['phi.alert.quarantine-quota']);
    // Each answer is audited twice by code: the rejection and its small quarantine record.
    expect(await auditedWith('E_QUARANTINE_QUOTA')).toBe(2 * (8 - kept));
  });
});

describe('a full quarantine (discard new)', () => {
  it('keeps what it holds and answers further rejections E_QUARANTINE_FULL', async () => {
    // Fill PHI_QUARANTINE to its max_bytes with filler straight from the inspector.
    const js = tap.jetstream();
    let refusals = 0;
    for (const size of [256 * 1024, 16 * 1024, 1024, 64]) {
      for (let i = 0; i < 64; i++) {
        try {
          await js.publish('phi.quarantine.filler', new Uint8Array(size));
        } catch (err) {
          // JetStream's JSStreamStoreFailedF (10077) "maximum bytes exceeded".
          expect(isStreamFull(err), `${size}/${i}`).toBe(true);
          refusals += 1;
          break;
        }
      }
    }
    const refused = refusals === 4;
    expect(refused).toBe(true);
    const before = (await jsm.streams.info(STREAMS.quarantine)).state;
    const r = await ehr.publish(BAD);
    expect(r).toMatchObject({ status: 'rejected', code: 'E_QUARANTINE_FULL' });
    const after = (await jsm.streams.info(STREAMS.quarantine)).state;
    expect(after.first_seq).toBe(before.first_seq);
    expect(after.messages).toBe(before.messages);
    // The rejection alone: no quarantine record was kept.
    expect(await auditedWith('E_QUARANTINE_FULL')).toBe(1);
  });

  it('is not shrunk below its contents by provisioning (the server would drop its oldest messages)', async () => {
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'reprovision');
    try {
      const before = (await jsm.streams.info(STREAMS.quarantine)).state;
      const settings = streamSettings({ ...stack.config, quarantineMaxBytes: MiB });
      await expect(ensureBrokerInfrastructure(admin, settings)).rejects.toMatchObject({
        code: 'E_CONFIG_INVALID',
        message: expect.stringContaining('PHI_QUARANTINE.max_bytes'),
      });
      const { config, state } = await jsm.streams.info(STREAMS.quarantine);
      expect(config.max_bytes).toBe(LIMITS.quarantineMaxBytes);
      expect([state.first_seq, state.messages]).toEqual([before.first_seq, before.messages]);
    } finally {
      await admin.close();
    }
  });
});
