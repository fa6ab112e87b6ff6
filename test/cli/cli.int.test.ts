// The `phi-broker` command as a user runs it, compiled, against one `phi-broker up` (embedded nats-server) for
// the whole file: publish prints the broker's verdict per resource and exits 1 on any rejection; tail prints a
// subscriber's projection even when it connects after the message was published (durable consumer); up stops
// cleanly on SIGINT; and publish without a running broker says how to start one.
import { readFileSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { freePort } from '../../src/nats/server.js';
import { EXAMPLE_PHI, ROOT, isAlive, killLeftovers, runCli, startUp, type UpProcess } from './run-cli.js';

const PATIENT_FILE = join(ROOT, 'examples', 'patient.json');
const BAD_PATIENT_FILE = join(ROOT, 'examples', 'bad-patient.json');
const BUNDLE_FILE = fileURLToPath(new URL('fixtures/transaction-bundle.json', import.meta.url));
const PATIENT = JSON.parse(readFileSync(PATIENT_FILE, 'utf8')) as Record<string, unknown>;
const BUNDLE_TEXT = readFileSync(BUNDLE_FILE, 'utf8');
const PHI = [...EXAMPLE_PHI, 'Wrenfield', 'Odalys', '555-0199-2468', '1977-03-08', 'SYN-4471-WREN', 'Zephyrine'];

/** Subscribers of `type` in the shipped subjects/ YAML, read here directly (not through the catalog compiler). */
function subscriberCount(type: string): number {
  let n = 0;
  for (const file of ['administrative.yaml', 'clinical.yaml']) {
    const doc = parseYaml(readFileSync(join(ROOT, 'subjects', file), 'utf8')) as {
      topics?: Record<string, { subscribers?: unknown[] }>;
    };
    n += doc.topics?.[type]?.subscribers?.length ?? 0;
  }
  return n;
}

const ACCEPTED = /^accepted ([0-9a-f-]{36}) \((\d+) deliveries\)$/;

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

interface TailLine {
  provenance: { publisher: string; messageId: string; profile: string; purpose: string };
  resource: Record<string, unknown>;
}

let dataDir: string;
let up: UpProcess;
const data = (): string[] => ['--data-dir', dataDir];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'phi-broker-cli-'));
  // Debug: the per-message lines (ingest.accepted, delivery.restricted) are debug-level, and the logs test below
  // must see them to prove they carry no PHI.
  up = await startUp([...data(), '--log-level', 'debug']);
});

afterAll(async () => {
  await killLeftovers();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('phi-broker up (embedded NATS)', () => {
  it('prints a ready line naming the embedded NATS (mTLS, the default) it wrote to <data-dir>/nats/server.json', () => {
    const server = JSON.parse(readFileSync(join(dataDir, 'nats', 'server.json'), 'utf8')) as {
      url: string;
      pid: number;
      tlsDir: string;
    };
    expect(server.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(server.tlsDir).toBe(join(dataDir, 'tls'));
    expect(up.readyLine).toContain(`nats ${server.url} (mTLS)`);
    expect(up.readyLine).toContain(`data dir ${dataDir}`);
    expect(isAlive(server.pid)).toBe(true);
  });
});

describe('phi-broker publish / tail', () => {
  let patientId: string;

  it('publish prints `accepted <id> (<n> deliveries)` and exits 0', async () => {
    const r = await runCli(['publish', '--as', 'registration', PATIENT_FILE, ...data()]);
    expect(r.stderr).toBe(''); // mTLS as the service: no insecure-transport warning
    expect(r.code).toBe(0);
    const m = ACCEPTED.exec(r.stdout.trimEnd());
    expect(m, r.stdout).not.toBeNull();
    patientId = m?.[1] ?? '';
    expect(Number(m?.[2])).toBe(subscriberCount('Patient'));
  });

  it('tail started after the publish still receives it: the notification projection, one JSON line', async () => {
    const r = await runCli(['tail', '--as', 'notification', '--count', '1', '--json', ...data()]);
    expect(r.stderr).toBe(''); // mTLS as the service: no insecure-transport warning
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(1);
    const d = JSON.parse(out[0] ?? '') as TailLine;
    expect(Object.keys(d.resource).sort()).toEqual(['id', 'meta', 'name', 'resourceType', 'telecom']);
    expect(d.resource['id']).not.toBe(PATIENT['id']); // notification's keyed pseudonym of it
    expect(d.resource['resourceType']).toBe('Patient');
    expect(d.resource['name']).toEqual(PATIENT['name']);
    // patient-contact keeps phone and email contact points only (its `where` filter): the fax number stays behind.
    const telecom = PATIENT['telecom'] as { system?: string }[];
    expect(telecom.some((t) => t.system === 'fax')).toBe(true);
    expect(d.resource['telecom']).toEqual(telecom.filter((t) => t.system === 'phone' || t.system === 'email'));
    expect(d.provenance).toMatchObject({ publisher: 'registration', messageId: patientId, purpose: 'HOPERAT' });
    expect(d.provenance.profile).toMatch(/\/patient-contact$/);
    expect((d.resource['meta'] as { profile?: unknown }).profile).toEqual([d.provenance.profile]);
  });

  it('tail --count n prints exactly n deliveries and leaves the rest for the next tail', async () => {
    const published = await Promise.all(
      [1, 2].map(() => runCli(['publish', '--as', 'registration', PATIENT_FILE, ...data()])),
    );
    const ids = published.map((p) => ACCEPTED.exec(p.stdout.trimEnd())?.[1]);
    expect(
      ids.every((id) => id !== undefined),
      published.map((p) => p.stdout + p.stderr).join('\n'),
    ).toBe(true);
    const first = await runCli(['tail', '--as', 'notification', '--count', '1', '--json', ...data()]);
    expect(first.code).toBe(0);
    expect(lines(first.stdout)).toHaveLength(1);
    const second = await runCli(['tail', '--as', 'notification', '--count', '1', '--json', ...data()]);
    expect(second.code).toBe(0);
    expect(lines(second.stdout)).toHaveLength(1);
    const got = [first, second].map((r) => (JSON.parse(lines(r.stdout)[0] ?? '') as TailLine).provenance.messageId);
    expect(got.sort()).toEqual([...ids].sort());
  });

  it('an unknown element: exit 1, `rejected <id> E_UNKNOWN_ELEMENT: <path>: …`, no value in the message', async () => {
    const r = await runCli(['publish', '--as', 'registration', BAD_PATIENT_FILE, ...data()]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^rejected [0-9a-f-]{36} E_UNKNOWN_ELEMENT: Patient\.name\[0\]\.nickname: unknown element/,
    );
    expect(lines(r.stdout)).toHaveLength(1);
    for (const s of PHI) expect(r.stdout).not.toContain(s);
  });

  it('malformed JSON from stdin (`-`): exit 1 with E_JSON_MALFORMED', async () => {
    const r = await runCli(['publish', '--as', 'registration', '-', ...data()], {
      input: '{"resourceType":"Patient","name":[{"family":"Zephyrine"',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^rejected [0-9a-f-]{36} E_JSON_MALFORMED: \S/);
    expect(r.stdout).not.toContain('Zephyrine');
  });

  it('a type the service may not publish: exit 1 with E_NOT_AUTHORIZED naming service and type', async () => {
    const r = await runCli(['publish', '--as', 'notification', PATIENT_FILE, ...data()]);
    expect(r.code).toBe(1);
    expect(r.stdout.trimEnd()).toMatch(
      /^rejected [0-9a-f-]{36} E_NOT_AUTHORIZED: service notification may not publish Patient( \[typ\])?$/,
    );
  });
});

describe('phi-broker publish of a transaction Bundle', () => {
  const PATIENT_UUID = '0b6f3a52-4c1e-4d7a-9b2e-5f8c1d9e7a31';

  it('prints one verdict per entry, in entry order, and exits 0 when all are accepted', async () => {
    const r = await runCli(['publish', '--as', 'registration', BUNDLE_FILE, ...data()]);
    expect(r.stderr).toBe(''); // mTLS as the service: no insecure-transport warning
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(2);
    expect(Number(ACCEPTED.exec(out[0] ?? '')?.[2])).toBe(subscriberCount('Patient'));
    expect(Number(ACCEPTED.exec(out[1] ?? '')?.[2])).toBe(subscriberCount('Coverage'));
  });

  it('entries reference each other as <Type>/<id> once delivered (urn:uuid rewritten)', async () => {
    const r = await runCli(['tail', '--as', 'billing', '--type', 'Coverage', '--count', '1', '--json', ...data()]);
    expect(r.code).toBe(0);
    const d = JSON.parse(lines(r.stdout)[0] ?? '') as TailLine;
    expect(d.provenance.publisher).toBe('registration');
    expect(d.resource['beneficiary']).toEqual({ reference: `Patient/${PATIENT_UUID}` });
    expect(d.resource['id']).toBe('7d2e9c14-8a3b-4f65-b1c0-2e4d6f8a9b07');
  });

  it('an entry that cannot stand alone is rejected with E_BUNDLE_INVALID naming it; the others go out; exit 1', async () => {
    const bundle = JSON.parse(BUNDLE_TEXT) as { entry: Record<string, unknown>[] };
    bundle.entry.push({
      fullUrl: 'urn:uuid:c3a1e5f7-0d2b-4e69-8f14-a7b9c2d4e6f8',
      resource: {
        resourceType: 'Coverage',
        status: 'active',
        beneficiary: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000000' },
        payor: [{ reference: `urn:uuid:${PATIENT_UUID}` }],
      },
    });
    const r = await runCli(['publish', '--as', 'registration', '-', ...data()], { input: JSON.stringify(bundle) });
    expect(r.code).toBe(1);
    const out = lines(r.stdout);
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(ACCEPTED);
    expect(out[1]).toMatch(ACCEPTED);
    expect(out[2]).toMatch(
      /^rejected [0-9a-f-]{36} E_BUNDLE_INVALID: Bundle\.entry\[2\]\.resource\.beneficiary\.reference: /,
    );
  });
});

describe('phi-broker up: logs and stopping', () => {
  it('logs (stderr) carry event names and codes but none of the PHI that went through', () => {
    const logs = up.stderr();
    expect(logs).toContain('ingest.accepted');
    expect(logs).toContain('E_UNKNOWN_ELEMENT');
    for (const s of PHI) expect(logs).not.toContain(s);
  });

  it('SIGINT: prints `stopping`, exits 0, stops the embedded nats-server and removes server.json', async () => {
    const serverFile = join(dataDir, 'nats', 'server.json');
    const server = JSON.parse(readFileSync(serverFile, 'utf8')) as { pid: number };
    const r = await up.stop('SIGINT');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('stopping');
    expect(existsSync(serverFile)).toBe(false);
    expect(isAlive(server.pid)).toBe(false);
    writeFileSync(join(dataDir, 'stale-server.json'), JSON.stringify(server));
  });

  it('publish once it has stopped: exit 1, names `phi-broker up --data-dir <dir>`', async () => {
    const r = await runCli(['publish', '--as', 'registration', PATIENT_FILE, ...data()]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`phi-broker: E_SETUP_MISSING: no running phi-broker in ${dataDir}`);
    expect(r.stderr).toContain(`phi-broker up --data-dir ${dataDir}`);
  });

  it('a server.json left by a killed broker is recognised as stale', async () => {
    const serverFile = join(dataDir, 'nats', 'server.json');
    writeFileSync(serverFile, readFileSync(join(dataDir, 'stale-server.json')));
    const r = await runCli(['publish', '--as', 'registration', PATIENT_FILE, ...data()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('did not stop cleanly');
    expect(r.stderr).toContain(`phi-broker up --data-dir ${dataDir}`);
  });

  it('a NATS that refuses the connection is named in the message', async () => {
    const port = await freePort();
    const r = await runCli(['publish', '--as', 'registration', PATIENT_FILE, ...data()], {
      env: { NATS_URL: `nats://127.0.0.1:${port}` },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`phi-broker: E_NATS_UNREACHABLE: cannot connect to NATS at nats://127.0.0.1:${port}`);
  });
});

describe('phi-broker publish without a broker', () => {
  it('in an empty data dir: exit 1 and a message naming `phi-broker up`', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'phi-broker-cli-empty-'));
    try {
      const r = await runCli(['publish', '--as', 'registration', PATIENT_FILE, '--data-dir', empty]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^phi-broker: /);
      expect(r.stderr).toContain(`phi-broker up --data-dir ${empty}`);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
