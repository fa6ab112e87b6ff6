// Witnessed chain heads and the audit streams' settings, against a real nats-server on the generated mTLS config.
// The attacker holds the ADMIN identity (stream management) and a broker host's certificate (which may publish on
// phi.audit.>): it deletes PHI_AUDIT, recreates it with the provisioned settings and publishes back the records it
// keeps, byte for byte — the chains then verify link by link, and only the witnessed heads (PHI_AUDIT_WITNESS, and
// a witness file kept outside NATS) show the cut. The compiled CLI runs `audit verify`
// and `audit witness` as an operator would.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { StreamConfig } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { auditStreamConfig } from '../../src/audit/setup.js';
import type { StoredRecord } from '../../src/audit/verify.js';
import { ChainWriter } from '../../src/audit/writer.js';
import { Broker } from '../../src/broker/broker.js';
import { readServiceKeys } from '../../src/runtime/key-files.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { STREAMS } from '../../src/wire/names.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');
const CHAIN = 'ward-a';
let stack: TestStack;
let original: StoredRecord[];
let witnessFile: string;
/** The chain sequence of the final checkpoint, and of every checkpoint record. */
let last: number;
let checkpoints: number[];

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args, '--data-dir', stack.config.dataDir], {
      env: { ...process.env, ...stack.env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function auditRecords(): Promise<StoredRecord[]> {
  const nc = await stack.connect('reader');
  const out: StoredRecord[] = [];
  for await (const r of readAuditRecords(nc)) out.push(r);
  await nc.close();
  return out;
}

const settings = (): { maxAgeMs: number; duplicateWindowMs: number; replicas: 1 | 3 | 5 } => ({
  maxAgeMs: stack.config.auditMaxAgeMs,
  duplicateWindowMs: stack.config.duplicateWindowMs,
  replicas: stack.config.replicas,
});

/**
 * The attack: with the ADMIN identity, delete PHI_AUDIT and recreate it with the provisioned settings (`final`
 * overrides them, e.g. deny_delete left off); with the BROKER identity's certificate (a compromised broker host),
 * publish back the original records `keep` accepts (by chain sequence), byte for byte.
 */
async function rewrite(keep: (chainSeq: number) => boolean, final: Partial<StreamConfig> = {}): Promise<void> {
  const admin = await stack.connectAs(ADMIN_IDENTITY, 'attacker-admin');
  const jsm = await admin.jetstreamManager();
  await jsm.streams.delete(STREAMS.audit);
  await jsm.streams.add({ ...auditStreamConfig(settings()), ...final });
  await admin.close();
  const broker = await stack.connectAs(BROKER_IDENTITY, 'attacker-broker');
  for (const r of original) {
    if (keep(decodeRecord(r.data)?.seq ?? 0)) await broker.jetstream().publish(r.subject, r.data);
  }
  await broker.close();
}

/** Puts the original records back (as a restore from an export would), with the provisioned settings. */
async function restore(): Promise<void> {
  await rewrite(() => true);
  const admin = await stack.connectAs(ADMIN_IDENTITY, 'restore');
  await provisionStreams(admin, stack.config);
  await admin.close();
}

beforeAll(async () => {
  stack = await startTestStack({
    config: { instanceId: CHAIN, auditCheckpointEvery: 2, auditIntegrityCheckMs: 0 },
  });
  const registration = await stack.client('registration');
  for (let i = 1; i <= 4; i++) {
    const r = await registration.publish({ resourceType: 'Patient', id: `pat-w-${i}`, name: [{ family: 'Wren' }] });
    expect(r.status).toBe('accepted');
  }
  await stack.broker?.stop(); // the final checkpoint, witnessed
  stack.broker = undefined;
  original = await auditRecords();
  const decoded = original.map((r) => decodeRecord(r.data));
  checkpoints = decoded.flatMap((r) => (r?.checkpoint === undefined ? [] : [r.seq]));
  last = decoded.at(-1)?.seq ?? 0;
  expect(decoded.at(-1)?.checkpoint?.final).toBe(true);
  expect(checkpoints.length).toBeGreaterThanOrEqual(3);
  witnessFile = join(stack.nats.dir, 'witness.jsonl');
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('witnessed heads', () => {
  it('the genuine trail verifies; `audit witness` appends the signed head of the chain to a file, once', async () => {
    const v = await cli('audit', 'verify');
    expect(v.stdout).toContain('ok: 1 chain(s)');
    expect(v.code).toBe(0);
    const w = await cli('audit', 'witness', '--out', witnessFile);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toContain(`chain ${CHAIN}: head ${last - 1} (final)`);
    expect(w.stdout).toContain('(1 new)');
    expect((await cli('audit', 'witness', '--out', witnessFile)).stdout).toContain('(0 new)');
  });

  it('a cut of the chain with its last checkpoints: verify exits 1 naming the chain and the missing records', async () => {
    // Keep everything before the second-to-last checkpoint: the chain then ends with an ordinary record.
    const cut = (checkpoints.at(-2) as number) - 1;
    await rewrite((seq) => seq <= cut);
    const v = await cli('audit', 'verify');
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(
      `TRUNCATED: chain ${CHAIN} ends at record ${cut}, but its head ${last - 1} was witnessed (checkpoint ${last}`,
    );
    expect(v.stdout).toContain(`records ${cut + 1}..${last} are missing (${last - cut} record(s))`);
    expect(v.stdout).not.toContain('WEAKENED'); // the attacker restored every setting
    for (const phi of ['Wren', 'pat-w-1']) expect(v.stdout).not.toContain(phi);
    // A broker that would continue this chain refuses to start rather than write after the cut.
    const nc = await stack.connectAs(BROKER_IDENTITY, 'continuing-broker');
    await expect(
      Broker.start({
        config: stack.config,
        catalog: stack.catalog,
        nc,
        keys: readServiceKeys(stack.keysDir, BROKER_ID),
        peers: stack.peers,
        secrets: stack.secrets,
        logger: stack.logger,
      }),
    ).rejects.toMatchObject({
      code: 'E_AUDIT_INTEGRITY',
      message: expect.stringContaining(`chain ${CHAIN} ends at record ${cut}`) as unknown,
    });
    await nc.close();
    // The attacker deletes the witness stream too: the file kept outside NATS still shows the cut.
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'attacker');
    await (await admin.jetstreamManager()).streams.delete(STREAMS.auditWitness);
    await admin.close();
    const bare = await cli('audit', 'verify');
    expect(bare.code).toBe(1);
    expect(bare.stdout).toContain(`WEAKENED: ${STREAMS.auditWitness} does not exist`);
    const withFile = await cli('audit', 'verify', '--witness', witnessFile, '--json');
    expect(withFile.code).toBe(1);
    expect(JSON.parse(withFile.stdout)).toMatchObject({
      ok: false,
      chainsOk: true,
      witness: [{ kind: 'truncated', chain: CHAIN, missing: { from: cut + 1, to: last } }],
    });
    await restore(); // PHI_AUDIT_WITNESS is back, empty: the file is the only witness from here on
  });

  it('records cut from inside the chain with every checkpoint kept: verify exits 1 naming the missing range', async () => {
    const [a, b] = [checkpoints[0] as number, checkpoints[1] as number];
    await rewrite((seq) => seq <= a || seq >= b);
    const v = await cli('audit', 'verify', '--witness', witnessFile);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`BROKEN: chain ${CHAIN} seq ${a + 1} (removed;`);
    expect(v.stdout).toContain(`records ${a + 1}..${b - 1} are missing (${b - 1 - a}): ${b} follows ${a}`);
    await restore();
    expect((await cli('audit', 'verify', '--witness', witnessFile)).code).toBe(0);
  });

  it('a chain that stops without its final checkpoint but reaches its witnessed head is a crash: a warning, exit 0', async () => {
    const nc = await stack.connectAs(BROKER_IDENTITY, 'crashing-broker');
    const writer = await ChainWriter.open({
      nc,
      chain: 'ward-crashed',
      signer: readServiceKeys(stack.keysDir, BROKER_ID).sign,
      checkpointEvery: 2,
      checkpointMs: 24 * 3_600_000,
      maxRecordBytes: 64 * 1024,
      now: Date.now,
      logger: stack.logger,
    });
    for (let i = 0; i < 5; i++) await writer.appendFacts([{ fact: { kind: 'broker-start' }, at: Date.now() }]);
    // Records 1, 2, checkpoint 3, 4, 5, checkpoint 6, 7 — then the process is gone: no final checkpoint.
    await nc.close();
    const v = await cli('audit', 'verify', '--witness', witnessFile);
    expect(v.stdout).toContain(
      'warning: chain ward-crashed ends at record 7 without its final checkpoint (its broker is running, or stopped by a crash); it reaches its last witnessed head 5',
    );
    expect(v.stdout).toContain('ok: 2 chain(s)');
    expect(v.code).toBe(0);
  });
});

describe("the audit streams' settings", () => {
  it('max_age lowered by the admin: verify exits 1 naming it, and a broker refuses to start (E_AUDIT_INTEGRITY)', async () => {
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'attacker');
    const jsm = await admin.jetstreamManager();
    const { config } = await jsm.streams.info(STREAMS.audit);
    await jsm.streams.update(STREAMS.audit, { ...config, max_age: 5 * 60 * 1e9 });
    const v = await cli('audit', 'verify', '--witness', witnessFile);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(
      `WEAKENED: ${STREAMS.audit} max_age is 5m, shorter than the configured retention 2192d (45 CFR 164.316(b)(2)(i))`,
    );
    const nc = await stack.connectAs(BROKER_IDENTITY, 'refused-broker');
    await expect(
      Broker.start({
        config: { ...stack.config, instanceId: 'ward-refused' },
        catalog: stack.catalog,
        nc,
        keys: readServiceKeys(stack.keysDir, BROKER_ID),
        peers: stack.peers,
        secrets: stack.secrets,
        logger: stack.logger,
      }),
    ).rejects.toMatchObject({
      code: 'E_AUDIT_INTEGRITY',
      message: expect.stringContaining(`${STREAMS.audit} max_age is 5m`) as unknown,
    });
    await nc.close();
    // Provisioning (the admin) lengthens retention back.
    await provisionStreams(admin, stack.config);
    await admin.close();
    expect((await cli('audit', 'verify', '--witness', witnessFile)).code).toBe(0);
  });

  it("deny_delete off: a running broker's periodic check raises the audit-integrity alert; verify exits 1 naming it", async () => {
    const nc = await stack.connectAs(BROKER_IDENTITY, 'watching-broker');
    const broker = await Broker.start({
      config: { ...stack.config, instanceId: 'ward-watch', auditIntegrityCheckMs: 200 },
      catalog: stack.catalog,
      nc,
      keys: readServiceKeys(stack.keysDir, BROKER_ID),
      peers: stack.peers,
      secrets: stack.secrets,
      logger: stack.logger,
    });
    expect((await broker.auditTrail.checkIntegrity()).ok).toBe(true);
    const watcher = await stack.connect('alert-watcher');
    const alerts = watcher.subscribe('phi.alert.audit-integrity', { max: 1 });
    const alerted = (async () => {
      for await (const m of alerts) return new TextDecoder().decode(m.data);
      return undefined;
    })();
    await watcher.flush();
    await rewrite(() => true, { deny_delete: false });
    await stack.logs.until(
      (r) =>
        r['event'] === 'audit.integrity' &&
        JSON.stringify(r['problems']).includes(`${STREAMS.audit} deny_delete is off`),
      'the periodic check',
    );
    expect(await alerted).toContain('deny_delete is off');
    expect(broker.auditTrail.integrity.problems).toContain(
      `${STREAMS.audit} deny_delete is off: records can be deleted one by one`,
    );
    await broker.stop().catch(() => undefined);
    await watcher.close();
    const v = await cli('audit', 'verify', '--witness', witnessFile);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`WEAKENED: ${STREAMS.audit} deny_delete is off`);
  });
});
