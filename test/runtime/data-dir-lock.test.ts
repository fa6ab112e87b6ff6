// The data-dir lock (src/runtime/data-dir-lock.ts): created once with `wx`, refused while its holder runs (same pid
// and, on Linux, the same start time), taken over when stale — the pid gone, or reused by another process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireDataDirLock, LOCK_FILE } from '../../src/runtime/data-dir-lock.js';
import { hasProcfs, processStartTicks } from '../../src/runtime/process-info.js';

let dir: string;
const lockFile = (): string => join(dir, LOCK_FILE);
const record = (): { pid: number; startTicks?: string; command: string } =>
  JSON.parse(readFileSync(lockFile(), 'utf8')) as { pid: number; startTicks?: string; command: string };

/** A pid that was alive a moment ago and is gone now (a child that ran and was reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  if (r.pid === undefined) throw new Error('no pid');
  return r.pid;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('acquireDataDirLock', () => {
  it('writes the holder (pid, start time, command) and refuses a second taker, naming the holder', () => {
    const lock = acquireDataDirLock(dir, 'phi-broker up');
    expect(record()).toMatchObject({ pid: process.pid, command: 'phi-broker up' });
    if (hasProcfs()) expect(record().startTicks).toBe(processStartTicks(process.pid));
    let err: unknown;
    try {
      acquireDataDirLock(dir, 'phi-broker demo');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'E_DATA_DIR_LOCKED', path: lockFile() });
    expect((err as Error).message).toContain(`in use by phi-broker up (pid ${process.pid}, started `);
    lock.verify();
    lock.release();
    expect(() => readFileSync(lockFile())).toThrow(/ENOENT/);
    acquireDataDirLock(dir, 'phi-broker up').release(); // free again
  });

  it('takes over a lock whose pid is gone', () => {
    const pid = deadPid();
    writeFileSync(lockFile(), JSON.stringify({ pid, startedAt: 'earlier', command: 'phi-broker up' }));
    const lock = acquireDataDirLock(dir, 'phi-broker up');
    expect(record().pid).toBe(process.pid);
    lock.release();
  });

  it.runIf(hasProcfs())('takes over a lock whose pid now names another process (start time differs)', () => {
    writeFileSync(
      lockFile(),
      JSON.stringify({ pid: process.pid, startTicks: '1', startedAt: 'earlier', command: 'phi-broker up' }),
    );
    const lock = acquireDataDirLock(dir, 'phi-broker up');
    expect(record().startTicks).toBe(processStartTicks(process.pid));
    lock.release();
  });

  it('refuses a lock file that is not a lock record, and leaves it', () => {
    writeFileSync(lockFile(), 'not json');
    expect(() => acquireDataDirLock(dir, 'phi-broker up')).toThrow(
      expect.objectContaining({
        code: 'E_DATA_DIR_LOCKED',
        message: expect.stringContaining('not a phi-broker lock record'),
      }),
    );
    expect(readFileSync(lockFile(), 'utf8')).toBe('not json');
  });

  it('verify() fails and release() leaves the file once another process took the lock over', () => {
    const lock = acquireDataDirLock(dir, 'phi-broker up');
    const other = { pid: process.ppid, startedAt: 'now', command: 'phi-broker demo' };
    writeFileSync(lockFile(), JSON.stringify(other));
    expect(() => lock.verify()).toThrow(expect.objectContaining({ code: 'E_DATA_DIR_LOCKED' }));
    lock.release();
    expect(record()).toMatchObject({ pid: process.ppid, command: 'phi-broker demo' });
  });
});
