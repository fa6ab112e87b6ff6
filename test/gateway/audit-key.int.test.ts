// The gateway's own audit-signing key: the compiled `phi-broker gateway` runs from a keys dir that holds no broker
// private key, writes its chain on `phi.audit.gw.<id>` signed with the `gateway` party's key, and `phi-broker audit
// verify` checks that chain with the gateway's public key alone — a jwks.json without it fails the chain. A running
// gateway follows `keys rotate --gateway`: its next checkpoints name and are signed by the new version.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { privateKeyFile, jwksFile } from '../../src/runtime/key-files.js';
import { BROKER_ID, GATEWAY_AUDIT_ID } from '../../src/wire/ids.js';
import { killLeftovers, runCli, startCli, type CliResult } from '../cli/run-cli.js';
import { ensureOperatorRootKey, publishDirectory } from '../../src/runtime/key-directory.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { until } from '../helpers/poll.js';

const work = mkdtempSync(join(tmpdir(), 'phi-gw-key-'));
let stack: TestStack;
let stopped: CliResult;
let chain: string;

/** One token request without an assertion (refused with 400, and recorded in the gateway's chain). */
function tokenRequest(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/auth/token`,
      { method: 'POST', ca, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end('grant_type=client_credentials');
  });
}

interface VerifyJson {
  readonly ok: boolean;
  readonly chains: readonly { chain: string; closed: boolean; checkpoints: number }[];
  readonly broken?: { chain?: string; kind: string };
}

const verify = async (...extra: string[]): Promise<{ code: number | null; report: VerifyJson }> => {
  const r = await runCli(['audit', 'verify', '--json', ...extra, '--data-dir', stack.config.dataDir], {
    env: stack.env,
  });
  return { code: r.code, report: JSON.parse(r.stdout) as VerifyJson };
};

beforeAll(async () => {
  stack = await startTestStack();
  const tls = stack.nats.tls;
  if (tls === undefined) throw new Error('expected an mTLS stack');
  // The gateway's data dir: a copy of the keys without the broker's private key file.
  const dataDir = join(work, 'gateway-data');
  cpSync(stack.keysDir, join(dataDir, 'keys'), { recursive: true });
  rmSync(privateKeyFile(join(dataDir, 'keys'), BROKER_ID));
  const gw = await startCli(['gateway', '--port', '0', '--data-dir', dataDir], { env: stack.env });
  const ready = /ready: (https:\/\/\S+) .*audit chain (\S+)$/.exec(gw.readyLine);
  if (ready === null) throw new Error(`unexpected ready line: ${gw.readyLine}`);
  chain = ready[2] as string;
  expect(await tokenRequest(ready[1] as string, readFileSync(tls.ca.certFile, 'utf8'))).toBe(400);
  // The gateway fixes V8's old-generation growing factor as `up` does (the default, 50 %).
  expect(gw.stderr()).toContain('"event":"memory.heap_growing","percent":50');
  stopped = await gw.stop('SIGTERM');
  expect(existsSync(privateKeyFile(join(dataDir, 'keys'), BROKER_ID))).toBe(false);
});

/** The kids of chain `chain`'s checkpoints in stream order, once it has at least `least` (bounded wait). */
async function checkpointKids(chain: string, least: number): Promise<string[]> {
  const nc = await stack.connect('checkpoint-reader');
  try {
    let kids: string[] = [];
    await until(`${least} checkpoints in ${chain}`, async () => {
      kids = [];
      for await (const r of readAuditRecords(nc)) {
        const record = decodeRecord(r.data);
        if (record?.chain === chain && record.checkpoint !== undefined) kids.push(record.checkpoint.kid);
      }
      return kids.length >= least;
    });
    return kids;
  } finally {
    await nc.close();
  }
}

afterAll(async () => {
  await killLeftovers();
  await stack?.stop();
});

describe('a gateway without the broker private key', () => {
  it('runs, writes its chain under gw.<id> and seals it on SIGTERM', () => {
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).not.toMatch(/E_KEY_UNKNOWN|broker\.private/);
    expect(chain).toMatch(/^gw\.[A-Za-z0-9-]+$/);
  });

  it('audit verify checks its chain with the gateway key from jwks.json (exit 0, chain closed)', async () => {
    const { code, report } = await verify();
    expect(report.broken).toBeUndefined();
    expect(code).toBe(0);
    const mine = report.chains.find((c) => c.chain === chain);
    expect(mine).toMatchObject({ closed: true });
    expect(mine?.checkpoints).toBeGreaterThanOrEqual(1);
  });

  it("audit verify refuses the chain when the jwks has the broker's keys but not the gateway's", async () => {
    const all = JSON.parse(readFileSync(jwksFile(stack.keysDir), 'utf8')) as { keys: { kid: string }[] };
    const withoutGateway = all.keys.filter((k) => !k.kid.startsWith(`${GATEWAY_AUDIT_ID}:`));
    expect(withoutGateway.length).toBeLessThan(all.keys.length);
    const file = join(work, 'jwks-without-gateway.json');
    writeFileSync(file, JSON.stringify({ keys: withoutGateway }));
    const { code, report } = await verify('--jwks', file);
    expect(code).toBe(1);
    expect(report.broken).toMatchObject({ chain, kind: 'checkpoint' });
  });

  it('follows keys rotate --gateway without a restart: its checkpoints switch to gateway:sig:2; audit verify passes', async () => {
    const { root } = await ensureOperatorRootKey(stack.keysDir);
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'provision-keys');
    await publishDirectory(admin, stack.catalog, stack.keysDir, root, { create: true });
    await admin.close();
    // On the data dir `keys rotate` writes to, a checkpoint after every record.
    const gw = await startCli(['gateway', '--port', '0', '--data-dir', stack.config.dataDir], {
      env: { ...stack.env, PHI_BROKER_AUDIT_CHECKPOINT_EVERY: '1' },
    });
    const ready = /ready: (https:\/\/\S+) .*audit chain (\S+)$/.exec(gw.readyLine);
    const tls = stack.nats.tls;
    if (ready === null || tls === undefined) throw new Error(`unexpected ready line: ${gw.readyLine}`);
    const [url, running] = [ready[1] as string, ready[2] as string];
    const ca = readFileSync(tls.ca.certFile, 'utf8');
    expect(await tokenRequest(url, ca)).toBe(400);
    expect(await checkpointKids(running, 1)).toEqual(['gateway:sig:1']);

    const rotated = await runCli(
      ['keys', 'rotate', '--gateway', '--overlap', '1h', '--data-dir', stack.config.dataDir],
      { env: stack.env },
    );
    expect(rotated.stdout).toMatch(/^rotated gateway: current gateway:sig:2 and gateway:enc:2;/);
    await until('the gateway to load gateway:sig:2', () =>
      gw
        .stderr()
        .split('\n')
        .some((l) => l.includes('"event":"keys.own.rotated"') && l.includes('"kid":"gateway:sig:2"')),
    );
    expect(await tokenRequest(url, ca)).toBe(400);
    expect((await gw.stop('SIGTERM')).code).toBe(0);

    // Every checkpoint before the switch names gateway:sig:1, every one after it gateway:sig:2 (the last seals).
    const kids = await checkpointKids(running, 3);
    expect(kids[0]).toBe('gateway:sig:1');
    expect(kids.at(-1)).toBe('gateway:sig:2');
    expect(kids).toEqual([...kids].sort());
    const both = await verify();
    expect(both.report.broken).toBeUndefined();
    expect(both.code).toBe(0);
    expect(both.report.chains.find((c) => c.chain === running)).toMatchObject({ closed: true });
    // The checkpoints after the switch need gateway:sig:2: without it, this chain (and not the first) breaks.
    const all = JSON.parse(readFileSync(jwksFile(stack.keysDir), 'utf8')) as { keys: { kid: string }[] };
    const file = join(work, 'jwks-without-gateway-sig-2.json');
    writeFileSync(file, JSON.stringify({ keys: all.keys.filter((k) => k.kid !== 'gateway:sig:2') }));
    const without = await verify('--jwks', file);
    expect(without.code).toBe(1);
    expect(without.report.broken).toMatchObject({ chain: running, kind: 'checkpoint' });
  });
});
