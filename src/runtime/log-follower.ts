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
  readonly size: number;
}

/** The file's current inode and size, or undefined when it does not exist. */
export function logPosition(file: string): LogPosition | undefined {
  try {
    const st = statSync(file);
    return { ino: st.ino, size: st.size };
  } catch {
    return undefined;
  }
}

export interface LogFollowerOptions {
  readonly file: string;
  /** Begin where the file stood then (same inode), else at the start of the file found. */
  readonly from?: LogPosition;
  readonly onLine: (line: string) => void;
  /** Longest line kept; the rest of a longer line is dropped and reported by `onOverlong`. */
  readonly maxLineBytes?: number;
  readonly onOverlong?: () => void;
  readonly maxBytesPerPoll?: number;
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
    if (this.fd === undefined && !this.openCurrent()) return 0;
    read += this.readAvailable();
    const now = logPosition(this.opts.file);
    if (now === undefined || now.ino !== this.ino) {
      // Rotated (or removed): finish the old file, then start on the new one.
      read += this.readAvailable();
      this.endOfFile();
      this.close();
      if (now !== undefined && this.openCurrent()) read += this.readAvailable();
    } else if (now.size < this.offset) {
      this.offset = 0; // truncated in place
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
      read += this.readAvailable();
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
    const from = this.first ? this.opts.from : undefined;
    this.first = false;
    this.offset = from !== undefined && from.ino === st.ino && from.size <= st.size ? from.size : 0;
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

  private take(text: string): void {
    const max = this.opts.maxLineBytes ?? 64 * 1024;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const line = this.partial + text.slice(start, nl);
      start = nl + 1;
      this.partial = '';
      if (this.overlong) {
        this.overlong = false; // the end of an overlong line
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
