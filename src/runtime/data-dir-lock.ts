// The exclusive lock a `phi-broker up` (or `demo`) holds on its data directory while it runs the embedded
// nats-server there: `<data-dir>/up.lock`, created atomically (O_CREAT|O_EXCL, flag `wx`) with the holder's pid and
// start time. Two nats-servers on one JetStream store corrupt it, so a second one refuses with E_DATA_DIR_LOCKED.
// A lock whose pid is gone, or now names another process (start time differs), is stale and taken over.
// docs/operations.md describes the lock.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BrokerError } from '../wire/errors.js';
import { isProcessAlive, processStartTicks } from './process-info.js';

export const LOCK_FILE = 'up.lock';

interface LockRecord {
  readonly pid: number;
  /** proc(5) stat starttime of the holder; absent off Linux. */
  readonly startTicks?: string;
  readonly startedAt: string;
  readonly command: string;
}

export interface DataDirLock {
  readonly file: string;
  /** Throws E_DATA_DIR_LOCKED when the file no longer names this process (another process took it over). */
  verify(): void;
  /** Removes the lock file if it is still this process's. */
  release(): void;
}

function parse(text: string): LockRecord | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockRecord>;
    if (typeof v.pid !== 'number' || !Number.isSafeInteger(v.pid) || v.pid <= 0) return undefined;
    return {
      pid: v.pid,
      startedAt: typeof v.startedAt === 'string' ? v.startedAt : '?',
      command: typeof v.command === 'string' ? v.command : 'phi-broker',
      ...(typeof v.startTicks === 'string' ? { startTicks: v.startTicks } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The holder still runs: its pid is alive and, where /proc tells, it is the same process (same start time). */
export function lockHolderAlive(record: { readonly pid: number; readonly startTicks?: string }): boolean {
  if (!isProcessAlive(record.pid)) return false;
  if (record.startTicks === undefined) return true;
  const now = processStartTicks(record.pid);
  return now === undefined || now === record.startTicks;
}

function readLock(file: string): { text: string; record: LockRecord | undefined } | undefined {
  try {
    const text = readFileSync(file, 'utf8');
    return { text, record: parse(text) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function lockedError(file: string, record: LockRecord): BrokerError {
  return new BrokerError(
    'E_DATA_DIR_LOCKED',
    `the data directory is in use by ${record.command} (pid ${record.pid}, started ${record.startedAt}; lock ${file}): stop that one first, or give another --data-dir`,
    { path: file },
  );
}

/**
 * Takes the lock or throws E_DATA_DIR_LOCKED naming the running holder. A stale lock is removed only if it still
 * holds what was judged stale, then the lock is created with `wx` again; of two takers, `wx` lets one win.
 */
export function acquireDataDirLock(dataDir: string, command: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, LOCK_FILE);
  const startTicks = processStartTicks(process.pid);
  const mine: LockRecord = {
    pid: process.pid,
    ...(startTicks === undefined ? {} : { startTicks }),
    startedAt: new Date().toISOString(),
    command,
  };
  const text = `${JSON.stringify(mine)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, text, { flag: 'wx', mode: 0o600 });
      return lockHandle(file, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = readLock(file);
    if (held === undefined) continue; // released meanwhile
    if (held.record === undefined) {
      throw new BrokerError(
        'E_DATA_DIR_LOCKED',
        `the lock ${file} is not a phi-broker lock record; if no phi-broker runs on this data directory, remove it`,
        { path: file },
      );
    }
    if (lockHolderAlive(held.record)) throw lockedError(file, held.record);
    // Stale: remove it only if nobody replaced it since it was read.
    if (readLock(file)?.text === held.text) rmSync(file, { force: true });
  }
  const held = readLock(file)?.record;
  throw held === undefined
    ? new BrokerError('E_DATA_DIR_LOCKED', `could not take the lock ${file}`, { path: file })
    : lockedError(file, held);
}

function lockHandle(file: string, text: string): DataDirLock {
  let released = false;
  return {
    file,
    verify() {
      const held = readLock(file);
      if (held?.text === text) return;
      throw held?.record === undefined
        ? new BrokerError('E_DATA_DIR_LOCKED', `the lock ${file} was removed while starting`, { path: file })
        : lockedError(file, held.record);
    },
    release() {
      if (released) return;
      released = true;
      if (readLock(file)?.text === text) rmSync(file, { force: true });
    },
  };
}
