// Follows a growing text log file by polling (like `tail -F`): reads what was appended since the last poll, line
// by line, and carries on when the file is rotated — renamed away and a new one created at the same path, as
// nats-server's `logfile_size_limit` does — by reading the old file (still open) to its end before the new one
// from its start; a file truncated in place is read again from its start. Synchronous reads of at most
// `maxBytesPerPoll` per poll keep it off the event loop's critical path.
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** Where a file ended at some moment: a follower started later begins there if the file is still the same one. */
export interface LogPosition {
  readonly ino: number;
  /** Creation time where the file system records it (0 where not): an inode number can be reused. */
  readonly birthtimeMs: number;
  readonly size: number;
}

export interface LogStart {
  readonly position: LogPosition | undefined;
  /** The rotated copies that existed then (by path). */
  readonly rotated: readonly string[];
}

/** The file and its rotated copies as they are now: where a follower started later begins. */
export function logStart(file: string, rotated: (file: string) => readonly string[]): LogStart {
  return { position: logPosition(file), rotated: [...rotated(file)] };
}

function sameFile(a: LogPosition, b: { readonly ino: number; readonly birthtimeMs: number }): boolean {
  return a.ino === b.ino && a.birthtimeMs === b.birthtimeMs;
}

/** The file's current inode and size, or undefined when it does not exist. */
export function logPosition(file: string): LogPosition | undefined {
  try {
    const st = statSync(file);
    return { ino: st.ino, birthtimeMs: st.birthtimeMs, size: st.size };
  } catch {
    return undefined;
  }
}

export interface LogFollowerOptions {
  readonly file: string;
  /**
   * Where to begin (logStart): where the file stood then (`position`, undefined when it did not exist) and the
   * rotated copies there were. Lines written since are read, also when the file rotated before the first poll: from
   * the position in the copy it became, then every newer copy, then the current file. Unset: the whole current file.
   */
  readonly from?: LogStart;
  readonly onLine: (line: string) => void;
  /** Longest line kept (UTF-16 units, default 64 Ki); a longer line is dropped whole and reported by `onOverlong`. */
  readonly maxLineChars?: number;
  readonly onOverlong?: () => void;
  readonly maxBytesPerPoll?: number;
  /**
   * The rotated copies of the file, oldest first (src/runtime/nats-log.ts rotatedLogs): when the file rotated more
   * than once between two polls, the copies newer than the one being read are read whole before the current file.
   */
  readonly rotated?: () => readonly string[];
}

const CHUNK = 64 * 1024;

export class LogFollower {
  private fd: number | undefined;
  private ino = -1;
  private offset = 0;
  private partial = '';
  private overlong = false;
  private decoder = new StringDecoder('utf8');
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private first = true;

  constructor(private readonly opts: LogFollowerOptions) {}

  /** Reads what is new (across a rotation); returns the bytes read. */
  poll(): number {
    let read = 0;
    if (this.first) read += this.catchUp();
    if (this.fd === undefined && !this.openCurrent()) return read;
    read += this.readAvailable();
    const now = logPosition(this.opts.file);
    if (now === undefined || now.ino !== this.ino) {
      // Rotated (or removed): finish the old file, then any copies rotated after it, then start on the new one.
      read += this.readToEnd();
      this.endOfFile();
      this.close();
      read += this.readRotatedSince(this.ino);
      if (now !== undefined && this.openCurrent()) read += this.readAvailable();
    } else if (now.size < this.offset) {
      this.offset = 0; // truncated in place
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
      read += this.readAvailable();
    }
    return read;
  }

  /**
   * Before the first open: the copies rotated since `from` — from the position in the one the file was then, whole
   * when they are newer — so lines written between `from` and the first poll are not lost to a rotation.
   */
  private catchUp(): number {
    const from = this.opts.from;
    if (from === undefined) return 0;
    const current = logPosition(this.opts.file);
    if (from.position !== undefined && current !== undefined && sameFile(from.position, current)) return 0;
    const copies = this.opts.rotated?.() ?? [];
    const before = new Set(from.rotated);
    let read = 0;
    for (const file of copies) {
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch {
        continue;
      }
      const st = fstatSync(fd);
      const was = from.position !== undefined && sameFile(from.position, st);
      if (!was && before.has(file)) {
        closeSync(fd);
        continue; // rotated before `from`
      }
      this.fd = fd;
      this.offset = was && from.position !== undefined ? Math.min(from.position.size, st.size) : 0;
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
      read += this.readToEnd();
      this.endOfFile();
      this.close();
    }
    this.first = false; // the current file is read from its start
    return read;
  }

  /** Reads whole every rotated copy newer than the one with inode `ino` (none when that copy is not found). */
  private readRotatedSince(ino: number): number {
    const copies = this.opts.rotated?.() ?? [];
    const inos = copies.map((f) => logPosition(f)?.ino);
    const at = inos.indexOf(ino);
    if (at === -1) return 0;
    let read = 0;
    for (const file of copies.slice(at + 1)) {
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch {
        continue; // pruned meanwhile
      }
      this.fd = fd;
      this.offset = 0;
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
      read += this.readToEnd();
      this.endOfFile();
      this.close();
    }
    return read;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private openCurrent(): boolean {
    let fd: number;
    try {
      fd = openSync(this.opts.file, 'r');
    } catch {
      return false;
    }
    const st = fstatSync(fd);
    this.fd = fd;
    this.ino = st.ino;
    const from = this.first ? this.opts.from?.position : undefined;
    this.first = false;
    this.offset = from !== undefined && sameFile(from, st) && from.size <= st.size ? from.size : 0;
    this.partial = '';
    this.decoder = new StringDecoder('utf8');
    return true;
  }

  private readAvailable(): number {
    const fd = this.fd;
    if (fd === undefined) return 0;
    const limit = this.opts.maxBytesPerPoll ?? 4 * 1024 * 1024;
    let total = 0;
    while (total < limit) {
      const n = readSync(fd, this.buf, 0, CHUNK, this.offset);
      if (n === 0) break;
      this.offset += n;
      total += n;
      this.take(this.decoder.write(this.buf.subarray(0, n)));
    }
    return total;
  }

  /** A file that will not grow any more (rotated away) is read whole, past the per-poll bound. */
  private readToEnd(): number {
    let read = 0;
    for (let n = this.readAvailable(); n > 0; n = this.readAvailable()) read += n;
    return read;
  }

  private take(text: string): void {
    const max = this.opts.maxLineChars ?? 64 * 1024;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const line = this.partial + text.slice(start, nl);
      start = nl + 1;
      this.partial = '';
      if (this.overlong) {
        this.overlong = false; // the end of an overlong line
        continue;
      }
      if (line.length > max) {
        this.opts.onOverlong?.();
        continue;
      }
      this.opts.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    if (this.overlong) return;
    this.partial += text.slice(start);
    if (this.partial.length > max) {
      this.partial = '';
      this.overlong = true;
      this.opts.onOverlong?.();
    }
  }

  /** A last line without its newline, at the end of a rotated file. */
  private endOfFile(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest !== '' && !this.overlong) this.opts.onLine(rest);
    this.overlong = false;
  }
}
