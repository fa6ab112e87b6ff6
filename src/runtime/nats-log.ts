// nats-server's own log file, `<data-dir>/nats/nats-server.log`: refused TLS handshakes, authorization failures
// and permission violations are recorded there (45 CFR 164.312(b) audit controls, docs/security-model.md).
// nats-server rotates it by size itself (`logfile_size_limit`: the full file is renamed
// `nats-server.log.YYYY.MM.DD.hh.mm.ss.<ns>`); 2.9 has no `logfile_max_num`, so phi-broker keeps the newest
// `keep` rotated files and removes older ones.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const ROTATED_SUFFIX = /^\.\d{4}\.\d{2}\.\d{2}\.\d{2}\.\d{2}\.\d{2}\.\d+$/;

/** The rotated copies of `logFile`, oldest first. */
export function rotatedLogs(logFile: string): string[] {
  const dir = dirname(logFile);
  const name = basename(logFile);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const rotated: { file: string; mtimeMs: number }[] = [];
  for (const e of entries) {
    if (!e.startsWith(name) || !ROTATED_SUFFIX.test(e.slice(name.length))) continue;
    try {
      rotated.push({ file: join(dir, e), mtimeMs: statSync(join(dir, e)).mtimeMs });
    } catch {
      // removed meanwhile
    }
  }
  // The suffix is the rotation time, fixed-width up to the nanoseconds: order by time, then by name.
  return rotated.sort((a, b) => a.mtimeMs - b.mtimeMs || a.file.localeCompare(b.file)).map((r) => r.file);
}

/** Removes all but the newest `keep` rotated copies; returns the files removed. */
export function pruneRotatedLogs(logFile: string, keep: number): string[] {
  const rotated = rotatedLogs(logFile);
  const excess = rotated.slice(0, Math.max(0, rotated.length - keep));
  for (const f of excess) rmSync(f, { force: true });
  return excess;
}
