// encodeEventsRecord writes each event straight into one buffer: the bytes must be exactly the UTF-8 of the
// record text it always stored (the chain hashes those bytes; auditors read them), whatever the events hold.
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeEventsRecord } from '../../src/audit/record.js';

/** The record as text, encoded in one go: the format of docs/audit.md. */
function reference(chain: string, seq: number, prev: string | null, at: number, events: readonly string[]): Buffer {
  return Buffer.from(
    `{"v":1,"chain":${JSON.stringify(chain)},"seq":${seq},"prev":${prev === null ? 'null' : JSON.stringify(prev)},"at":${at},"events":[${events.join(',')}]}`,
    'utf8',
  );
}

const ev = (id: string, extra = ''): string => JSON.stringify({ resourceType: 'AuditEvent', id, outcomeDesc: extra });

describe('encodeEventsRecord', () => {
  it.each([
    ['no events', []],
    ['one event', [ev('a')]],
    ['several events', [ev('a'), ev('b'), ev('c')]],
    [
      'non-ASCII, astral and escaped characters',
      [ev('a', 'naïve – Ü'), ev('b', 'emoji 😀'), ev('c', 'quote " back \\ nul \u0000'), ev('d', '\uf000 private use')],
    ],
    [
      'an event composed of pieces (a rope)',
      [['{"resourceType":"AuditEvent",', '"id":"', 'x'.repeat(5000), '"}'].join('')],
    ],
  ])('%s: the exact bytes of the record text', (_name, events: string[]) => {
    const bytes = encodeEventsRecord('host-1-abcdef', 7, 'prev-hash_base64url', 1767322245678, events);
    expect(Buffer.from(bytes).equals(reference('host-1-abcdef', 7, 'prev-hash_base64url', 1767322245678, events))).toBe(
      true,
    );
    expect(decodeRecord(bytes)?.events?.length).toBe(events.length);
  });

  it('the first record (prev null) and a chain name that needs escaping', () => {
    const events = [ev('a')];
    expect(
      Buffer.from(encodeEventsRecord('ch"ain', 1, null, 5, events)).equals(reference('ch"ain', 1, null, 5, events)),
    ).toBe(true);
  });
});
