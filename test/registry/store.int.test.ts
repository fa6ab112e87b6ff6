// The registry's compare-and-set on a real JetStream KV bucket: two writers on separate connections (as two
// broker processes) updating one key at once lose no update, conflicts are seen and retried, a deleted key is
// re-created, and a redelivered message is counted once.
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryStore } from '../../src/registry/store.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';

let nats: TestNats;
let a: RegistryStore;
let b: RegistryStore;
let ncB: NatsConnection;

beforeAll(async () => {
  nats = await startTestNats();
  a = await RegistryStore.open(await nats.connect('writer-a'));
  ncB = await nats.connect('writer-b');
  b = await RegistryStore.open(ncB);
});

afterAll(async () => {
  await nats?.stop();
});

const obs = (messageId: string, source: string) => ({
  messageId,
  types: ['Observation'],
  at: Date.UTC(2026, 0, 1),
  source,
  recipients: [{ service: 'ehr', purpose: 'TREAT' }],
});

it('two concurrent writers on one key lose no update: every conflict is retried on a fresh read', async () => {
  const PER_WRITER = 40;
  await Promise.all([
    ...Array.from({ length: PER_WRITER }, (_, i) => a.record('k-contended', obs(`a-${i}`, 'registration'))),
    ...Array.from({ length: PER_WRITER }, (_, i) => b.record('k-contended', obs(`b-${i}`, 'billing'))),
  ]);
  const record = await a.get('k-contended');
  expect(record?.services['registration']?.source?.count).toBe(PER_WRITER);
  expect(record?.services['billing']?.source?.count).toBe(PER_WRITER);
  expect(record?.services['ehr']?.recipient?.count).toBe(2 * PER_WRITER);
  // 80 read-modify-writes issued together on one key: the server refused the stale ones, the stores retried.
  expect(a.stats.conflicts + b.stats.conflicts).toBeGreaterThan(0);
  expect(a.stats.updates + b.stats.updates).toBe(2 * PER_WRITER);
});

it('a write based on a stale read is refused by the server (the guarantee the retry relies on)', async () => {
  await a.record('k-stale', obs('s-1', 'ehr'));
  const stale = await a.kv.get('k-stale');
  await b.record('k-stale', obs('s-2', 'ehr'));
  await expect(a.kv.update('k-stale', new Uint8Array([1]), stale?.revision ?? 0)).rejects.toMatchObject({
    api_error: { err_code: 10071 },
  });
  expect((await a.get('k-stale'))?.services['ehr']?.source?.count).toBe(2);
});

it('re-creates a deleted key, and counts a redelivered message once', async () => {
  await a.record('k-deleted', obs('d-1', 'ehr'));
  await a.kv.delete('k-deleted');
  expect(await a.get('k-deleted')).toBeUndefined();
  await b.record('k-deleted', obs('d-2', 'ehr'));
  await b.record('k-deleted', obs('d-2', 'ehr'));
  const record = await a.get('k-deleted');
  expect(record?.services['ehr']?.source?.count).toBe(1);
  expect(record?.recent).toEqual(['d-2']);
  expect(b.stats.duplicates).toBe(1);
});

it('writes on top of the revision it last wrote without reading, and a stale one is refused and retried on a fresh read', async () => {
  await a.record('k-known', obs('n-1', 'ehr'));
  const reads = a.stats.reads;
  await a.record('k-known', obs('n-2', 'ehr'));
  expect(a.stats.reads).toBe(reads); // the remembered revision: no read
  await b.record('k-known', obs('n-3', 'ehr')); // a's revision is stale now
  const conflicts = a.stats.conflicts;
  await a.record('k-known', obs('n-4', 'ehr'));
  expect(a.stats.conflicts).toBe(conflicts + 1);
  expect(a.stats.reads).toBe(reads + 1);
  const record = await b.get('k-known');
  expect(record?.services['ehr']?.source?.count).toBe(4);
  expect(record?.recent).toEqual(['n-1', 'n-2', 'n-3', 'n-4']);
});

it('reads first on a key another writer keeps changing, and writes optimistically again once it stops', async () => {
  await a.record('k-turns', obs('t-0', 'ehr'));
  await b.record('k-turns', obs('t-1', 'ehr'));
  const conflicts = a.stats.conflicts;
  const reads = a.stats.reads;
  await a.record('k-turns', obs('t-2', 'ehr')); // optimistic on a stale revision: refused, read, retried
  expect(a.stats.conflicts - conflicts).toBe(1);
  for (let i = 3; i < 9; i += 2) {
    await b.record('k-turns', obs(`t-${i}`, 'ehr'));
    await a.record('k-turns', obs(`t-${i + 1}`, 'ehr')); // contended: read, then a write that succeeds
  }
  expect(a.stats.conflicts - conflicts).toBe(1);
  expect(a.stats.reads - reads).toBe(4);
  await a.record('k-turns', obs('t-9', 'ehr')); // the read shows nobody else wrote: optimistic from now on
  await a.record('k-turns', obs('t-10', 'ehr'));
  expect(a.stats.reads - reads).toBe(5);
  expect(a.stats.conflicts - conflicts).toBe(1);
  expect((await b.get('k-turns'))?.services['ehr']?.source?.count).toBe(11);
});

it('group-commits the observations of one key that arrive while its write is in flight', async () => {
  const writes = a.stats.writes;
  const updates = a.stats.updates;
  await Promise.all(Array.from({ length: 20 }, (_, i) => a.record('k-group', obs(`g-${i}`, 'registration'))));
  // The first observation goes alone; the 19 queued behind it go in one compare-and-set.
  expect(a.stats.writes - writes).toBe(2);
  expect(a.stats.updates - updates).toBe(20);
  expect((await b.get('k-group'))?.services['registration']?.source?.count).toBe(20);
});
