// An operator command that fails on a data dir nobody set up leaves nothing behind: no half-created folders, and
// above all no fresh broker secrets (a command that made some would compute pseudonyms no broker uses).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, NOT_BUILT } from './run-cli.js';

const base = mkdtempSync(join(tmpdir(), 'phi-fresh-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const COMMANDS: readonly (readonly string[])[] = [
  ['registry', 'show', '--patient', 'Patient/p1'],
  ['access', 'list'],
  ['access', 'export', 'ar-1', '--out', '/dev/null'],
  ['audit', 'query', '--patient', 'Patient/p1'],
  ['audit', 'verify'],
  ['quarantine', 'list'],
  ['disclosures', '--patient', 'Patient/p1'],
  ['consent', 'list', '--patient', 'Patient/p1'],
  ['publish', '--as', 'ehr', '/dev/null'],
];

describe.skipIf(NOT_BUILT !== undefined)('operator commands on a data dir that does not exist', () => {
  it.each(COMMANDS.map((c) => [c.join(' '), c] as const))('%s: exit 1, a message, and no data dir', (_, args) => {
    const dir = join(base, args.join('-').replace(/[^a-z0-9-]/gi, '_'));
    const env = { ...process.env };
    delete env['NATS_URL'];
    const r = spawnSync(process.execPath, [CLI, ...args, '--data-dir', dir], {
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^phi-broker: /);
    expect(existsSync(dir)).toBe(false);
  });
});
