// encodeEventsRecord writes each event straight into one buffer: the bytes must be exactly the UTF-8 of the
// record text it always stored (the chain hashes those bytes; auditors read them), whatever the events hold. Record
// v2: facts come back as they went in, with their ids and times, and a record whose table does not decode is refused.
import { describe, expect, it } from 'vitest';
import type { AuditFact } from '../../src/audit/facts.js';
import { decodeRecord, encodeEventsRecord, encodeFactsBody, encodeFactsRecord } from '../../src/audit/record.js';
import { eventId } from '../../src/audit/render.js';

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

describe('record v2: facts in a value table', () => {
  const chain = 'host-1-abcdef';
  const subject = { messageId: 'm-1', resourceType: 'Patient', patientPseudonym: 'pp-1' };
  const facts: AuditFact[] = [
    { kind: 'accepted', sender: { service: 'registration' }, subject, ingestSeq: 7 },
    {
      kind: 'rejected',
      code: 'E_SENDER_THROTTLED',
      ingestSeq: 8,
      count: 3,
      codes: { E_VALUE_INVALID: 1, E_NOT_FHIR: 2 },
      sender: { service: 'ehr', address: '10.0.0.7' },
    },
    { kind: 'alert', rule: 'rejections', detail: 'quote " back \\ naïve – 😀 nul \u0000 \uf000 "7"' },
    {
      kind: 'partner-notification',
      operation: 'events',
      service: 'partner',
      subscription: 's-1',
      events: [1, 2, 3, 7],
      deliveryIds: ['m-1.partner', '7'],
    },
    { kind: 'broker-stop' },
  ];
  const entries = facts.map((fact, i) => ({ fact, at: 1767322245000 + i, ...(i === 2 ? { id: 'shown-id' } : {}) }));
  const at = 1767322245678;
  const bytes = encodeFactsRecord(chain, 3, 'prev', at, encodeFactsBody(at, { host: 'h' }, entries));

  it('decodes to the same facts, ids (stored or derived) and times, each value written once', () => {
    const r = decodeRecord(bytes);
    expect(r).toMatchObject({ v: 2, chain, seq: 3, prev: 'prev', at, source: { host: 'h' } });
    expect(r?.facts?.map((f) => f.fact)).toEqual(facts);
    expect(r?.facts?.map((f) => f.at)).toEqual(entries.map((e) => e.at));
    expect(r?.facts?.map((f) => f.id)).toEqual(facts.map((_, i) => (i === 2 ? 'shown-id' : eventId(chain, 3, i))));
    expect(r?.events?.map((e) => e.id)).toEqual(r?.facts?.map((f) => f.id));
    // The string '7', the number 7, the subject object: one table entry each.
    const vals = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { vals: unknown[] }).vals;
    expect(vals.filter((v) => v === '7')).toHaveLength(1);
    expect(vals.filter((v) => v === 7)).toHaveLength(1);
    expect(vals.filter((v) => v === 'registration')).toHaveLength(1);
  });

  it('derived ids are RFC 9562 version 8 UUIDs, distinct per chain, record and index', () => {
    const ids = [eventId(chain, 1, 0), eventId(chain, 1, 1), eventId(chain, 2, 0), eventId('other', 1, 0)];
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(4);
  });

  it.each([
    ['an index not below the entry', (t: string) => t.replace('"vals":[', '"vals":[[0],')],
    ['a fact index out of range', (t: string) => t.replace(/"sender":\d+/, '"sender":4096')],
    ['an unknown kind', (t: string) => t.replace('"accepted"', '"acceptedx"')],
    ['a string where an index belongs', (t: string) => t.replace(/"ingestSeq":\d+/, '"ingestSeq":"7"')],
    ['events and facts in one record', (t: string) => t.replace('"facts":', '"events":[],"facts":')],
    ['a recorder that is not one', (t: string) => t.replace('"host":"h"', '"host":"h","rec":"broker"')],
  ])('%s: not a record (verify: malformed)', (_name, change: (t: string) => string) => {
    const text = Buffer.from(bytes).toString('utf8');
    expect(change(text)).not.toBe(text);
    expect(decodeRecord(Buffer.from(change(text)))).toBeUndefined();
  });
});
