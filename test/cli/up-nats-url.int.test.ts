// `phi-broker up` with NATS_URL: the broker runs against the NATS it is given (here the test's own nats-server)
// and starts no embedded one — no <data-dir>/nats/, no server.json — while publish, with the same NATS_URL,
// goes through it; stopping `up` leaves that NATS running. Here the plaintext development path, which `up` takes
// only with --insecure-plaintext (and says so on stderr); without a TLS dir and without the flag it refuses. With
// natsLogFile it follows that nats-server log for security incidents.
// (`up` with NATS_URL and PHI_BROKER_NATS_TLS_DIR over mTLS: test/cli/mtls.int.test.ts.)
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { STREAMS } from '../../src/wire/names.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import {
  ROOT,
  isAlive,
  killLeftovers,
  runCli,
  startUp,
  stderrBesidesInsecureWarning,
  type UpProcess,
} from './run-cli.js';

const PLAINTEXT_WARNING =
  /^WARNING: --insecure-plaintext: NATS without TLS and without client certificates .* Local development only\.$/m;

let nats: TestNats;
let dataDir: string;
let up: UpProcess;

beforeAll(async () => {
  nats = await startTestNats({ tls: false }); // the plaintext path is what this file tests
  dataDir = mkdtempSync(join(tmpdir(), 'phi-broker-cli-url-'));
  up = await startUp(['--insecure-plaintext', '--data-dir', dataDir], {
    env: {
      NATS_URL: nats.server.url,
      PHI_BROKER_NATS_LOG_FILE: join(dataDir, 'cluster-nats.log'),
      PHI_BROKER_SECURITY_LOG_INTERVAL_MS: '500',
    },
  });
});

afterAll(async () => {
  await killLeftovers();
  await nats?.stop();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('phi-broker up with NATS_URL', () => {
  it('without a TLS dir and without --insecure-plaintext: refuses (exit 1, E_CONFIG_INVALID naming both fixes)', async () => {
    const r = await runCli(['up', '--data-dir', dataDir], { env: { NATS_URL: nats.server.url } });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^phi-broker: E_CONFIG_INVALID: natsTlsDir: NATS_URL is set without a TLS dir; set PHI_BROKER_NATS_TLS_DIR .* or pass --insecure-plaintext/,
    );
  });

  it('--insecure-plaintext together with a TLS dir: refuses, naming the conflict', async () => {
    const r = await runCli(['up', '--insecure-plaintext', '--data-dir', dataDir], {
      env: { NATS_URL: nats.server.url, PHI_BROKER_NATS_TLS_DIR: join(dataDir, 'tls') },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'E_CONFIG_INVALID: natsTlsDir: set (PHI_BROKER_NATS_TLS_DIR) together with --insecure-plaintext',
    );
  });

  it('--insecure-plaintext: ready on the given NATS, says INSECURE PLAINTEXT (ready line and a warning on stderr), starts no embedded nats-server', () => {
    expect(up.readyLine).toContain(`nats ${nats.server.url} (INSECURE PLAINTEXT)`);
    expect(up.stderr()).toMatch(PLAINTEXT_WARNING);
    expect(existsSync(join(dataDir, 'nats'))).toBe(false);
    expect(existsSync(join(dataDir, 'keys', 'jwks.json'))).toBe(true);
  });

  it('serves /readyz and /metrics on the port its ready line names (a free one here: PHI_BROKER_HEALTH_PORT=0)', async () => {
    const url = /health (http:\/\/127\.0\.0\.1:\d+)\/readyz/.exec(up.readyLine)?.[1];
    expect(url).toBeDefined();
    const ready = await fetch(`${String(url)}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { failing: string[] }).failing).toEqual([]);
    const metrics = parsePrometheusTextFormat(await (await fetch(`${String(url)}/metrics`)).text());
    expect(metrics.find((f) => f.name === 'phi_broker_ready')?.metrics[0]?.value).toBe('1');
    // `up` also exports the standard process metrics.
    expect(metrics.some((f) => f.name === 'phi_broker_process_cpu_seconds_total')).toBe(true);
  });

  it('created the streams on that NATS', async () => {
    const jsm = await (await nats.connect('check')).jetstreamManager();
    const info = await jsm.streams.info(STREAMS.ingest);
    expect(info.config.name).toBe(STREAMS.ingest);
  });

  it('publish with the same NATS_URL is accepted by it', async () => {
    const r = await runCli(
      ['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), '--data-dir', dataDir],
      { env: { NATS_URL: nats.server.url } },
    );
    expect(stderrBesidesInsecureWarning(r.stderr)).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^accepted [0-9a-f-]{36} \(\d+ deliveries\)\n$/);
  });

  it('follows the nats-server log natsLogFile names: its refused clients become security-incident AuditEvents', async () => {
    // nats-server 2.9.10 lines captured from a real server (test/nats/fixtures/), appended as a server on this host would.
    const lines = readFileSync(join(ROOT, 'test', 'nats', 'fixtures', 'nats-server-2.9.10-security.log'), 'utf8');
    appendFileSync(join(dataDir, 'cluster-nats.log'), lines);
    const nc = await nats.connect('audit-reader');
    let kinds: string[] = [];
    try {
      for (let i = 0; i < 60 && kinds.length < 4; i++) {
        kinds = [];
        for await (const r of readAuditRecords(nc))
          for (const e of decodeRecord(r.data)?.events ?? [])
            for (const c of e.subtype ?? [])
              if (c.system === 'urn:phi-broker:security-incident') kinds.push(c.code ?? '');
        if (kinds.length < 4) await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await nc.close();
    }
    expect(kinds.sort()).toEqual(['authentication', 'publish-violation', 'subscription-violation', 'tls-handshake']);
  });

  it('stops on SIGTERM with exit 0 and leaves the NATS it did not start running', async () => {
    const r = await up.stop('SIGTERM');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('stopping');
    expect(isAlive(nats.server.pid)).toBe(true);
    const nc = await nats.connect('after');
    await expect(nc.flush()).resolves.toBeUndefined();
  });
});
