// Finding and stopping a nats-server an earlier `up` left on our store (src/runtime/nats-orphans.ts), against real
// processes: a nats-server on our config is stopped; a nats-server on another config and a process that is no
// nats-server — whose pid our pid file names — are never signalled.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';
import { findOrphanNatsServers, stopOrphanNatsServers } from '../../src/runtime/nats-orphans.js';
import { isProcessAlive } from '../../src/runtime/process-info.js';

let dir: string;
let ours: RunningNatsServer;
let other: RunningNatsServer;
let decoy: ChildProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-orphans-'));
  const log = (name: string) => ({
    logFile: join(dir, name, 'nats-server.log'),
    sizeLimit: 1024 * 1024,
    pidFile: join(dir, name, 'nats-server.pid'),
    portsFileDir: join(dir, name),
  });
  ours = await startNatsServer({ dir: join(dir, 'ours'), log: log('ours') });
  other = await startNatsServer({ dir: join(dir, 'other'), log: log('other') });
  decoy = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
}, 30_000);

afterAll(async () => {
  decoy?.kill('SIGKILL');
  await ours?.stop();
  await other?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

it('stops only the nats-server whose command line names our config, never a process a pid file merely names', async () => {
  const decoyPid = decoy.pid ?? -1;
  const decoyPidFile = join(dir, 'decoy.pid');
  writeFileSync(decoyPidFile, String(decoyPid));
  const search = {
    configFile: join(dir, 'ours', 'nats-server.conf'),
    pidFiles: [decoyPidFile, join(dir, 'ours', 'nats-server.pid'), join(dir, 'missing.pid')],
  };
  expect(findOrphanNatsServers(search)).toEqual([ours.pid]);

  expect(await stopOrphanNatsServers(search)).toEqual([ours.pid]);
  const exit = await ours.exited;
  // nats-server handles SIGTERM itself (JetStream flushes) and exits; a SIGKILL would show as the signal.
  expect(exit).toEqual({ code: expect.any(Number), signal: null });
  expect(isProcessAlive(other.pid)).toBe(true);
  expect(isProcessAlive(decoyPid)).toBe(true);
  expect(findOrphanNatsServers(search)).toEqual([]);
  expect(await stopOrphanNatsServers(search)).toEqual([]);
});
