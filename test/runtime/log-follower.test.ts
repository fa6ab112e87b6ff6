// LogFollower on real files: appended lines in order, a line split across writes, a start from a recorded position,
// a rotation the way nats-server does it (rename, then a new file at the path) with the old file's last lines read
// before the new file's, a truncation in place, and an overlong line dropped and reported.
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogFollower, logPosition } from '../../src/runtime/log-follower.js';

const dir = mkdtempSync(join(tmpdir(), 'phi-broker-follow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function follow(file: string, extra: Partial<ConstructorParameters<typeof LogFollower>[0]> = {}) {
  const lines: string[] = [];
  let overlong = 0;
  const f = new LogFollower({ file, onLine: (l) => lines.push(l), onOverlong: () => (overlong += 1), ...extra });
  return { f, lines, overlong: () => overlong };
}

describe('LogFollower', () => {
  it('reads appended lines, holding a partial line until its newline; nothing before the recorded position', () => {
    const file = join(dir, 'a.log');
    writeFileSync(file, 'old 1\nold 2\n');
    const { f, lines } = follow(file, { from: { position: logPosition(file), rotated: [] } });
    expect(f.poll()).toBe(0);
    appendFileSync(file, 'new 1\nnew ');
    f.poll();
    expect(lines).toEqual(['new 1']);
    appendFileSync(file, '2 é\n');
    f.poll();
    expect(lines).toEqual(['new 1', 'new 2 é']);
    f.close();
  });

  it('starts at the beginning when the recorded position is of another file, or there was none', () => {
    const file = join(dir, 'b.log');
    const other = join(dir, 'other.log');
    writeFileSync(other, 'x\n');
    writeFileSync(file, 'first\n');
    const { f, lines } = follow(file, { from: { position: logPosition(other), rotated: [] } });
    f.poll();
    expect(lines).toEqual(['first']);
    f.close();
    const later = join(dir, 'later.log');
    expect(logPosition(later)).toBeUndefined();
    const next = follow(later);
    expect(next.f.poll()).toBe(0); // no file yet
    writeFileSync(later, 'first\nsecond\n');
    next.f.poll();
    expect(next.lines).toEqual(['first', 'second']);
    next.f.close();
  });

  it('follows a rotation: the renamed file is read to its end (a last line without newline too), then the new one', () => {
    const file = join(dir, 'c.log');
    writeFileSync(file, 'one\n');
    const { f, lines } = follow(file);
    f.poll();
    appendFileSync(file, 'two\nthree');
    renameSync(file, `${file}.2026.12.07.01.33.16.1`); // as logfile_size_limit does
    writeFileSync(file, 'four\n');
    f.poll();
    expect(lines).toEqual(['one', 'two', 'three', 'four']);
    appendFileSync(file, 'five\n');
    f.poll();
    expect(lines).toEqual(['one', 'two', 'three', 'four', 'five']);
    f.close();
  });

  it('reads every copy when the file rotated several times between two polls, oldest first', () => {
    const file = join(dir, 'e.log');
    writeFileSync(file, 'a1\n');
    const copies: string[] = [];
    const { f, lines } = follow(file, { rotated: () => copies });
    f.poll();
    appendFileSync(file, 'a2\n');
    for (const [i, text] of ['b1\nb2\n', 'c1\n'].entries()) {
      copies.push(`${file}.${i}`);
      renameSync(file, `${file}.${i}`);
      writeFileSync(file, text);
    }
    copies.push(`${file}.2`);
    renameSync(file, `${file}.2`);
    writeFileSync(file, 'd1\n');
    f.poll();
    expect(lines).toEqual(['a1', 'a2', 'b1', 'b2', 'c1', 'd1']);
    f.close();
  });

  it('reads what was written since `from` when the file rotated before the first poll: the rest of its copy, later copies, the current file', () => {
    const file = join(dir, 'f.log');
    writeFileSync(join(dir, 'f.log.0'), 'rotated before\n'); // a copy older than `from`: not this run's
    writeFileSync(file, 'before\n');
    const from = { position: logPosition(file), rotated: [join(dir, 'f.log.0')] };
    const copies = [join(dir, 'f.log.0')];
    appendFileSync(file, 'x1\n');
    copies.push(join(dir, 'f.log.1'));
    renameSync(file, join(dir, 'f.log.1'));
    writeFileSync(file, 'y1\n');
    copies.push(join(dir, 'f.log.2'));
    renameSync(file, join(dir, 'f.log.2'));
    writeFileSync(file, 'z1\n');
    const { f, lines } = follow(file, { from, rotated: () => copies });
    f.poll();
    expect(lines).toEqual(['x1', 'y1', 'z1']);
    // No file when `from` was taken: every copy rotated since, whole.
    const g = join(dir, 'g.log');
    const gFrom = { position: logPosition(g), rotated: [] };
    writeFileSync(g, 'g1\n');
    renameSync(g, `${g}.0`);
    writeFileSync(g, 'g2\n');
    const second = follow(g, { from: gFrom, rotated: () => [`${g}.0`] });
    second.f.poll();
    expect(second.lines).toEqual(['g1', 'g2']);
    f.close();
    second.f.close();
  });

  it('reads a file truncated in place from its start, and drops an overlong line', () => {
    const file = join(dir, 'd.log');
    writeFileSync(file, 'aaaa\nbbbb\n');
    const { f, lines, overlong } = follow(file, { maxLineChars: 16 });
    f.poll();
    writeFileSync(file, 'c\n'); // shorter than what was read
    f.poll();
    expect(lines).toEqual(['aaaa', 'bbbb', 'c']);
    appendFileSync(file, `${'z'.repeat(40)}\nafter\n`);
    f.poll();
    expect(lines).toEqual(['aaaa', 'bbbb', 'c', 'after']);
    expect(overlong()).toBe(1);
    f.close();
  });
});
