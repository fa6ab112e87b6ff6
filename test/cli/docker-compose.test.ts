// docker-compose.yml against the CLI it runs: its one-shot `certs` command, run here into a temporary directory in
// place of the /data volume, produces every /data path the file references (node configs, TLS files, the TLS dir),
// each node config names certificates that exist and passes `nats-server -t`, and every node keeps its JetStream
// store on a volume of its own. With the `docker-compose` binary present (Debian's docker-compose, the Python v1
// tool; no engine needed), `docker-compose config` accepts the file.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { secretsFile } from '../../src/runtime/broker-secrets.js';
import { jwksFile } from '../../src/runtime/key-files.js';
import { findNatsServerBinary } from '../../src/nats/server-binary.js';
import { CLI, NOT_BUILT, ROOT } from './run-cli.js';

interface ComposeService {
  readonly command?: string | readonly string[];
  readonly volumes?: readonly string[];
  readonly environment?: Readonly<Record<string, string>>;
  readonly healthcheck?: { readonly test?: readonly string[] };
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const NODES = ['nats-1', 'nats-2', 'nats-3'];
/** Written by the broker's `up` at its first start (development keys), not by the one-shot certs service. */
const WRITTEN_BY_UP = new Set([jwksFile('/data/keys'), secretsFile('/data/keys')]);
const DATA_PATH = /(?<![\w/.-])\/data(?:\/[\w.-]+)*/g;

let dir: string;
const local = (path: string): string => path.replace(/^\/data(?=\/|$)/, dir);

/** Every string in the compose file (commands, environment, healthchecks, volumes). */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(strings);
  return [];
}

beforeAll(() => {
  if (NOT_BUILT !== undefined) throw new Error(NOT_BUILT);
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-compose-'));
  const command = compose.services['certs']?.command;
  expect(Array.isArray(command) && command[0] === 'sh' && command[1] === '-c').toBe(true);
  // The certs service's own script, with the CLI and the /data volume pointed here.
  const script = String((command as readonly string[])[2])
    .replaceAll('node dist/src/cli/main.js', `"${process.execPath}" "${CLI}"`)
    .replace(DATA_PATH, (p) => local(p));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NATS_URL' && !k.startsWith('PHI_BROKER_')) env[k] = v;
  const r = spawnSync('sh', ['-c', script], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}, 90_000);

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('docker-compose.yml', () => {
  it('every /data path it references is produced by the CLI (the development keys by the broker at start)', () => {
    const referenced = [...new Set(strings(compose).flatMap((s) => s.match(DATA_PATH) ?? []))].sort();
    expect(referenced).toEqual(expect.arrayContaining(NODES.map((n) => `/data/nats/${n}.conf`)));
    const missing = referenced.filter((p) => !WRITTEN_BY_UP.has(p) && p !== '/data' && !existsSync(local(p)));
    expect(missing).toEqual([]);
    // The broker's health check waits for exactly the files `up` writes.
    expect(referenced.filter((p) => p.startsWith('/data/keys/')).sort()).toEqual([...WRITTEN_BY_UP].sort());
  });

  it.each(NODES)('%s: runs its generated config, whose TLS files exist, on a store volume of its own', (node) => {
    const service = compose.services[node];
    expect(service?.command).toEqual(['-c', `/data/nats/${node}.conf`]);
    const file = local(`/data/nats/${node}.conf`);
    const text = readFileSync(file, 'utf8');
    const files = [...text.matchAll(/(?:cert_file|key_file|ca_file): "([^"]+)"/g)].map((m) => m[1] as string);
    expect(files).toHaveLength(6); // client TLS and route TLS
    for (const f of files) expect(existsSync(f), f).toBe(true);
    expect(text).toContain(`store_dir: "/jetstream/${node}"`);
    expect(service?.volumes).toContain(`${node}-jetstream:/jetstream`);
    const r = spawnSync(findNatsServerBinary(), ['-t', '-c', file], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toContain('is valid');
    expect(r.status).toBe(0);
  });

  it('two brokers and provisioning at R3, connecting to every node', () => {
    const ups = Object.entries(compose.services).filter(([, s]) => strings(s.command).includes('up'));
    expect(ups.map(([name]) => name).sort()).toEqual(['broker-1', 'broker-2']);
    for (const name of ['provision', 'broker-1', 'broker-2', 'notification', 'registration']) {
      const env = compose.services[name]?.environment ?? {};
      expect(env['PHI_BROKER_REPLICAS'], name).toBe('3');
      expect(env['NATS_URL'], name).toBe(NODES.map((n) => `nats://${n}:4222`).join(','));
    }
    expect(existsSync(join(ROOT, 'examples', 'patient.json'))).toBe(true);
  });

  const composeBinary = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!composeBinary)(
    '`docker-compose config` accepts it (skipped without the docker-compose binary: apt-get install docker-compose)',
    () => {
      const r = spawnSync('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config', '-q'], {
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    },
  );
});
