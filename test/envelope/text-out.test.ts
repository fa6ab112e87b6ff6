// src/envelope/text-out.ts: the sealer's byte buffer writes UTF-8 as Buffer.from would, grows past its first size
// and hands out copies the next text does not overwrite.
import { describe, expect, it } from 'vitest';
import { TextOut } from '../../src/envelope/text-out.js';

describe('TextOut', () => {
  it('writes characters, text as UTF-8 and quoted text, and grows past its first size', () => {
    const out = new TextOut(4);
    out.byte(0x7b);
    out.quoted('given');
    out.byte(0x3a);
    out.text('"naïve 😀 \u0000"');
    out.text('x'.repeat(100));
    out.byte(0x7d);
    const expected = `{"given":"naïve 😀 \u0000"${'x'.repeat(100)}}`;
    expect(Buffer.from(out.bytes()).toString('utf8')).toBe(expected);
    expect(out.bytes()).toEqual(new Uint8Array(Buffer.from(expected, 'utf8')));
  });

  it('starts afresh on reset; a text handed out stays as it was', () => {
    const out = new TextOut(8);
    out.text('first text');
    const first = out.bytes();
    out.reset();
    out.text('second');
    expect(Buffer.from(first).toString('utf8')).toBe('first text');
    expect(Buffer.from(out.bytes()).toString('utf8')).toBe('second');
    expect(first).not.toBeInstanceOf(Buffer);
    // Past the size it keeps (256 KB) and back.
    out.reset();
    out.text('y'.repeat(300_000));
    const large = out.bytes();
    out.reset();
    out.quoted('small');
    expect(large.byteLength).toBe(300_000);
    expect(Buffer.from(out.bytes()).toString('utf8')).toBe('"small"');
  });
});
