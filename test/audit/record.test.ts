// encodeEventsRecord writes each event straight into one buffer: the bytes must be exactly the UTF-8 of the
// record text it always stored (the chain hashes those bytes; auditors read them), whatever the events hold. Records
// v2 and v3: facts come back as they went in, with their ids and times, and a record whose table does not decode is
// refused; v3 writes each fact's key names once per record and leaves out a delivery id the reader derives.
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
  const bytes = encodeFactsRecord(chain, 3, 'prev', at, encodeFactsBody(at, { host: 'h' }, entries, 2), 2);

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

describe('record v3: facts by shape', () => {
  const chain = 'host-1-abcdef';
  const subject = { messageId: 'm-1', resourceType: 'Patient', patientPseudonym: 'pp-1' };
  const sender = { service: 'registration' };
  const delivered = (service: string, deliveryId = `m-1.${service}`): AuditFact => ({
    kind: 'delivered',
    sender,
    recipient: { service },
    subject,
    profileUrl: `https://example.org/p/${service}`,
    purpose: 'TREAT',
    elements: ['Patient.name'],
    deliveryId,
    keys: { released: `${service}:enc:1`, signed: 'broker:sig:1' },
  });
  const facts: AuditFact[] = [
    { kind: 'accepted', sender, subject, ingestSeq: 7 },
    delivered('sub1'),
    delivered('sub2'),
    // A delivery id not of the broker's form is stored as it is.
    delivered('sub3', 'm-1.other'),
    { kind: 'alert', rule: 'rejections', detail: 'quote " back \\ naïve 😀 nul \u0000' },
    { kind: 'broker-stop' },
  ];
  const entries = facts.map((fact, i) => ({ fact, at: 1767322245000 + i, ...(i === 4 ? { id: 'shown-id' } : {}) }));
  const at = 1767322245678;
  const bytes = encodeFactsRecord(chain, 3, 'prev', at, encodeFactsBody(at, { host: 'h' }, entries));
  const text = Buffer.from(bytes).toString('utf8');
  const { vals } = JSON.parse(text) as { vals: unknown[] };

  it('decodes to the same facts, ids and times; key names once per shape; a derivable delivery id not stored', () => {
    const r = decodeRecord(bytes);
    expect(r).toMatchObject({ v: 3, chain, seq: 3, prev: 'prev', at, source: { host: 'h' } });
    expect(r?.facts?.map((f) => f.fact)).toEqual(facts);
    expect(r?.facts?.map((f) => f.at)).toEqual(entries.map((e) => e.at));
    expect(r?.facts?.map((f) => f.id)).toEqual(facts.map((_, i) => (i === 4 ? 'shown-id' : eventId(chain, 3, i))));
    const stored = JSON.parse(text) as { vals: unknown[]; facts: [number, unknown[]][] };
    expect(stored.facts.every(([, f]) => Array.isArray(f))).toBe(true);
    expect(stored.vals.filter((v) => v === 'profileUrl')).toHaveLength(1);
    // The profiles' common URL prefix: one entry, each URL `[prefix, "rest"]`.
    expect(stored.vals.filter((v) => v === 'https://example.org/p/')).toHaveLength(1);
    expect(text.match(/example\.org/g)).toHaveLength(1);
    expect(stored.vals.filter((v) => v === 'deliveryId')).toHaveLength(1); // the third delivery's shape only
    expect(text).not.toContain('"m-1.sub1"');
    expect(text).toContain('"m-1.other"');
    // The same facts as a v2 record: the same events, in more bytes.
    const v2 = encodeFactsRecord(chain, 3, 'prev', at, encodeFactsBody(at, { host: 'h' }, entries, 2), 2);
    expect(decodeRecord(v2)?.events).toEqual(r?.events);
    expect(bytes.byteLength).toBeLessThan(v2.byteLength);
  });

  it.each([
    ['a shape that is not an entry', (t: string) => t.replace(/"facts":\[\[(\d+),\[\d+,/, '"facts":[[$1,[4096,')],
    ['a shape of another length', (t: string) => t.replace(/"facts":\[\[(\d+),\[(\d+),/, '"facts":[[$1,[$2,0,')],
    ['a shape that is not key names', (t: string) => t.replace(/"facts":\[\[(\d+),\[\d+,/, '"facts":[[$1,[0,')],
    [
      'a string where an index belongs',
      (t: string) => t.replace(/"facts":\[\[(\d+),\[(\d+),/, '"facts":[[$1,[$2,"x",'),
    ],
    // The number entry 7 (ingestSeq) as a URL's prefix.
    ['a prefix that is not a string', (t: string) => t.replace(/\[\d+,"sub1"\]/, `[${vals.indexOf(7)},"sub1"]`)],
  ])('%s: not a record (verify: malformed)', (_name, change: (t: string) => string) => {
    expect(change(text)).not.toBe(text);
    expect(decodeRecord(Buffer.from(change(text)))).toBeUndefined();
  });

  it('a v3 record holding facts as objects (the v2 form) is not a record', () => {
    const v2 = encodeFactsRecord(chain, 3, 'prev', at, encodeFactsBody(at, { host: 'h' }, entries, 2), 2);
    const t = Buffer.from(v2).toString('utf8');
    expect(decodeRecord(v2)?.v).toBe(2);
    expect(decodeRecord(Buffer.from(t.replace('{"v":2,', '{"v":3,')))).toBeUndefined();
    // Nor does a v2 table hold `[prefix, "rest"]` strings.
    expect(decodeRecord(Buffer.from(text.replace('{"v":3,', '{"v":2,')))).toBeUndefined();
  });

  it('a delivered fact without its delivery id takes it from its subject and recipient, or does not decode', () => {
    // A record written by hand (docs/audit.md "Record v3"): recipient entry 4 is `{"service":<r>}`.
    const record = (r: number): Buffer =>
      Buffer.from(
        `{"v":3,"chain":"c","seq":1,"prev":null,"at":5,"vals":["delivered","registration",{"service":1},5,` +
          `{"service":${r}},"m-1","Patient",{"messageId":5,"resourceType":6},"https://x","TREAT","Patient.name",[10],` +
          `"kind","sender","recipient","subject","profileUrl","purpose","elements",[12,13,14,15,16,17,18]],` +
          `"facts":[[0,[19,0,2,4,7,8,9,11]]]}`,
      );
    expect(decodeRecord(record(1))?.facts?.[0]?.fact).toMatchObject({
      kind: 'delivered',
      recipient: { service: 'registration' },
      deliveryId: 'm-1.registration',
    });
    expect(decodeRecord(record(3))).toBeUndefined(); // the recipient's service is a number
  });
});
