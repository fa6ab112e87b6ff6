// End to end over a real nats-server: a Synthea patient whose MR sits under a system no profile lists and whose SSN
// is recognisable only by type on one identifier and only by system on another. The billing subscriber
// (patient-billing: `identifiers` keep MR, drop SS and the us-ssn system) receives the MR and no SSN; the planted
// SSN values appear nowhere in billing's delivery bytes (raw, and decrypted with billing's own keys). The immunization
// registry partner (public-health, patient-iis: keep MR, drop SS) gets the MR and no SSN either, while ehr
// (patient-full) receives both, so the SSNs were really there to withhold.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { openEnvelope, parseEnvelope } from '../../src/envelope/open.js';
import { verifyDelivery } from '../../src/sdk/delivery.js';
import type { Delivered, PhiClient } from '../../src/sdk/client.js';
import { HEADERS, subjects } from '../../src/wire/names.js';
import { EXAMPLES, HAVE_EXAMPLES, SKIP_NOTE } from '../projection/fixtures.js';
import { Waiter, filesUnder, startTestStack, type TestStack } from '../helpers/stack.js';

type Json = Record<string, unknown>;
/** Planted, distinctive values (synthetic): the MR under an unlisted system, an SSN by type, an SSN by system. */
const MRN = 'MRN-ELSEWHERE-0314159';
const SSN_BY_TYPE = '999-31-4159';
const SSN_BY_SYSTEM = '999-27-1828';

function syntheaPatient(): Json {
  const bundle = JSON.parse(
    readFileSync(join(EXAMPLES, 'synthea', 'Truman_Wiegand_299750d1-6993-41a2-a16b-0d566cbcfb30.json'), 'utf8'),
  ) as { entry: { resource: Json }[] };
  const patient = bundle.entry.map((e) => e.resource).find((r) => r['resourceType'] === 'Patient');
  if (patient === undefined) throw new Error('no Patient in the Synthea bundle');
  const codeOf = (i: Json): unknown =>
    ((i['type'] as Json | undefined)?.['coding'] as Json[] | undefined)?.[0]?.['code'];
  const ids = (patient['identifier'] as Json[]).map((i) => {
    if (codeOf(i) === 'MR') return { ...i, system: 'urn:example:mrn-elsewhere', value: MRN };
    if (codeOf(i) === 'SS') return { ...i, system: 'urn:example:national-id', value: SSN_BY_TYPE };
    return i;
  });
  ids.push({ system: 'http://hl7.org/fhir/sid/us-ssn', value: SSN_BY_SYSTEM });
  return { ...patient, id: 'idtype-e2e-1', identifier: ids };
}

describe.skipIf(!HAVE_EXAMPLES)(`identifier rules through the broker${SKIP_NOTE}`, () => {
  let stack: TestStack;
  let tap: NatsConnection;
  const raw: { subject: string; sig: string | undefined; data: Uint8Array }[] = [];
  const got = new Map<string, Delivered<Json>[]>();
  const waiter = new Waiter();
  let registration: PhiClient;

  beforeAll(async () => {
    stack = await startTestStack();
    tap = await stack.connect('tap');
    tap.subscribe(subjects.deliverFilter('billing'), {
      callback: (_e, m) => {
        raw.push({ subject: m.subject, sig: m.headers?.get(HEADERS.signature) || undefined, data: m.data });
        waiter.signal();
      },
    });
    await tap.flush();
    for (const service of ['billing', 'ehr', 'public-health']) {
      const c = await stack.client(service);
      got.set(service, []);
      await c.subscribe('Patient', (d) => {
        got.get(service)?.push(d as unknown as Delivered<Json>);
        waiter.signal();
      });
    }
    registration = await stack.client('registration');
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('billing and the immunization registry receive the MR (an unlisted system) and no SSN; ehr receives all', async () => {
    const input = syntheaPatient();
    const r = await registration.publish(input);
    expect(r.status).toBe('accepted');
    const mine = (s: string): Delivered<Json>[] => (got.get(s) ?? []).filter((d) => d.provenance.messageId === r.id);
    await waiter.until(
      () =>
        mine('billing').length === 1 &&
        mine('ehr').length === 1 &&
        mine('public-health').length === 1 &&
        raw.length >= 1,
    );

    const billing = mine('billing')[0]?.resource ?? {};
    const mr = (input['identifier'] as Json[]).find((i) => i['value'] === MRN);
    expect(billing['identifier']).toEqual([mr]);
    expect(billing['name']).toEqual(input['name']);
    // The partner outside the covered entity: the same MR, no SSN, whichever way it was filed.
    const registry = mine('public-health')[0]?.resource ?? {};
    expect(registry['identifier']).toEqual([mr]);
    for (const ssn of [SSN_BY_TYPE, SSN_BY_SYSTEM]) expect(JSON.stringify(registry)).not.toContain(ssn);

    const ehrIds = ((mine('ehr')[0]?.resource ?? {})['identifier'] as Json[]).map((i) => i['value']);
    expect(ehrIds).toEqual(expect.arrayContaining([MRN, SSN_BY_TYPE, SSN_BY_SYSTEM]));
  });

  it("the SSNs appear nowhere in billing's delivery bytes, raw or decrypted with billing's keys", () => {
    const ring = new Keyring(stack.keys('billing'), stack.peers);
    expect(raw).toHaveLength(1);
    for (const m of raw) {
      const bytes = Buffer.from(m.data).toString('utf8');
      for (const ssn of [SSN_BY_TYPE, SSN_BY_SYSTEM]) expect(bytes).not.toContain(ssn);
      const brokerKids = new Set(
        stack.peers.filter((k) => k.service === 'broker' && k.use === 'sig').map((k) => k.kid),
      );
      const env = verifyDelivery(m.data, m.sig, ring, brokerKids);
      const opened = JSON.stringify(openEnvelope(parseEnvelope(m.data), 'billing', (id) => ring.kekForId(id)));
      expect(env.id).toBeTypeOf('string');
      expect(opened).toContain(MRN);
      for (const ssn of [SSN_BY_TYPE, SSN_BY_SYSTEM]) expect(opened).not.toContain(ssn);
    }
  });

  it('nor in plaintext anywhere in the JetStream store', () => {
    for (const f of filesUnder(stack.nats.dir)) {
      const text = readFileSync(f).toString('latin1');
      for (const ssn of [SSN_BY_TYPE, SSN_BY_SYSTEM, MRN]) expect(text, f).not.toContain(ssn);
    }
  });
});
