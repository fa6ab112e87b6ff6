// Pruning nats-server's rotated log files (src/runtime/nats-log.ts): nats-server 2.9 renames a full log to
// `<name>.YYYY.MM.DD.hh.mm.ss.<ns>` and keeps every copy; phi-broker keeps the newest n and touches nothing else.
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { pruneRotatedLogs, rotatedLogs } from '../../src/runtime/nats-log.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-natslog-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('keeps the newest n rotated copies, the live log and every other file', () => {
  const log = join(dir, 'nats-server.log');
  const rotated = [1, 2, 3, 4, 5].map((i) => `nats-server.log.2026.01.0${i}.10.00.00.12345678${i}`);
  const others = ['nats-server.log', 'nats-server.log.bak', 'nats-server.conf', 'other.log.2026.01.01.10.00.00.1'];
  for (const f of [...rotated, ...others]) writeFileSync(join(dir, f), 'x');
  // mtimes in rotation order, the oldest first
  rotated.forEach((f, i) => utimesSync(join(dir, f), 1_700_000_000 + i, 1_700_000_000 + i));
  expect(rotatedLogs(log)).toEqual(rotated.map((f) => join(dir, f)));
  expect(pruneRotatedLogs(log, 2)).toEqual(rotated.slice(0, 3).map((f) => join(dir, f)));
  expect(readdirSync(dir).sort()).toEqual([...rotated.slice(3), ...others].sort());
  expect(pruneRotatedLogs(log, 2)).toEqual([]);
});
