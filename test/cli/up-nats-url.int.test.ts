// `phi-broker up` with NATS_URL: the broker runs against the NATS it is given (here the test's own nats-server)
// and starts no embedded one — no <data-dir>/nats/, no server.json — while publish, with the same NATS_URL,
// goes through it; stopping `up` leaves that NATS running.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMS } from '../../src/nats/names.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import { ROOT, isAlive, killLeftovers, runCli, startUp, stderrBesidesInsecureWarning, type UpProcess } from './run-cli.js';

let nats: TestNats;
let dataDir: string;
let up: UpProcess;

beforeAll(async () => {
  nats = await startTestNats();
  dataDir = mkdtempSync(join(tmpdir(), 'phi-broker-cli-url-'));
  up = await startUp(['--data-dir', dataDir], { env: { NATS_URL: nats.server.url } });
});

afterAll(async () => {
  await killLeftovers();
  await nats?.stop();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('phi-broker up with NATS_URL', () => {
  it('is ready on the given NATS and starts no embedded nats-server', () => {
    expect(up.readyLine).toContain(`nats ${nats.server.url}`);
    expect(existsSync(join(dataDir, 'nats'))).toBe(false);
    expect(existsSync(join(dataDir, 'keys', 'jwks.json'))).toBe(true);
  });

  it('created the streams on that NATS', async () => {
    const jsm = await (await nats.connect('check')).jetstreamManager();
    const info = await jsm.streams.info(STREAMS.ingest);
    expect(info.config.name).toBe(STREAMS.ingest);
  });

  it('publish with the same NATS_URL is accepted by it', async () => {
    const r = await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), '--data-dir', dataDir], { env: { NATS_URL: nats.server.url } });
    expect(stderrBesidesInsecureWarning(r.stderr)).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^accepted [0-9a-f-]{36} \(\d+ deliveries\)\n$/);
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
