// R4 topic-based Subscriptions at the partner gateway, end to end on one real stack: nats-server (mTLS), the
// broker, two HTTPS gateways sharing NATS, and a loopback HTTPS rest-hook receiver standing in for the partner.
// ehr publishes Immunizations; public-health (partner) subscribes to its Immunization topic and receives signed
// history Bundles holding exactly its projection; the receiver failing (503, then a closed port) loses nothing and
// duplicates nothing; $events replays; GET /[type]/[id] reads a notified copy back; an `id-only` subscription to
// Patient names each copy by URL without its bytes; stopping the gateway that holds the lease hands delivery on;
// DELETE switches a subscription off; two subscriptions to one topic on two receivers, one down for a while, each
// get every event once, in order; an idle subscription gets heartbeats. Last, on the key directory: `keys rotate
// --broker` then `--service public-health` while a Subscription is live; its notifications keep flowing.
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Immunization, Parameters, Patient } from 'fhir/r4.js';
import { SignJWT, compactVerify, createLocalJWKSet, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from 'fhir/r4.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { BACKPORT, TOPIC_BASE } from '../../src/gateway/subscriptions/model.js';
import { SIGNATURE_HEADER } from '../../src/gateway/subscriptions/worker.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { Broker } from '../../src/broker/broker.js';
import { readServiceKeyVersions } from '../../src/runtime/key-files.js';
import { ensureOperatorRootKey, publishDirectory } from '../../src/runtime/key-directory.js';
import { PhiClient } from '../../src/sdk/client.js';
import { STREAMS } from '../../src/wire/names.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { NOT_BUILT, runCli } from '../cli/run-cli.js';
import { balpProblems } from '../helpers/balp.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { startTestGateway } from '../helpers/gateway.js';
import { ROOT, Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

const BASE_URL = 'https://partners.example.test';
const PLANTED = 'PLANTED-SSN-078-05-1120';
const TOPIC = `${TOPIC_BASE}Immunization`;
const MASKED = {
  extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }],
};

let stack: TestStack;
let gws: Gateway[] = [];
let ca: string;
let key: CryptoKey;
let hookUrl: string;
let hookUrl2: string;

/** A partner rest-hook: records every request; answers `mode` (a status), or is closed. */
const makeReceiver = () => ({
  server: undefined as Server | undefined,
  port: 0,
  mode: 200,
  /** Every request, in arrival order, with the status it was answered. */
  got: [] as { body: string; signature: string | undefined; status: number; at: number }[],
  waiter: new Waiter(),
  pem: undefined as { key: string; cert: string } | undefined,
  /** Listens (on the same port once it has one); the certificate may be set later (`secure`). */
  async listen(): Promise<void> {
    const server = createServer(this.pem ?? {}, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = this.mode;
        this.got.push({
          body: Buffer.concat(chunks).toString('utf8'),
          signature: req.headers[SIGNATURE_HEADER.toLowerCase()] as string | undefined,
          status,
          at: performance.now(),
        });
        res.writeHead(status).end();
        this.waiter.signal();
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  },
  secure(pem: { key: string; cert: string }): void {
    this.pem = pem;
    this.server?.setSecureContext(pem);
  },
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    s?.closeAllConnections();
    await new Promise<void>((resolve) => s?.close(() => resolve()) ?? resolve());
  },
  /** Accepted (2xx) event notifications of one subscription (default the Immunization one): [event number, bundle]. */
  accepted(of: string = subId): [number, Bundle][] {
    return this.got
      .filter((g) => g.status >= 200 && g.status < 300)
      .map((g) => JSON.parse(g.body) as Bundle)
      .filter(
        (b) =>
          statusOf(b).type === 'event-notification' && statusOf(b).subscription === `${BASE_URL}/Subscription/${of}`,
      )
      .map((b) => [statusOf(b).numbers[0] as number, b]);
  },
  /** Every request for one subscription (any type, any answer), in arrival order. */
  of(id: string): { bundle: Bundle; body: string; status: number; signature: string | undefined; at: number }[] {
    return this.got
      .map((g) => ({ ...g, bundle: JSON.parse(g.body) as Bundle }))
      .filter((g) => statusOf(g.bundle).subscription === `${BASE_URL}/Subscription/${id}`);
  },
});
const receiver = makeReceiver();
/** A second endpoint of the same partner. */
const receiver2 = makeReceiver();

function statusOf(b: Bundle): { type: string; numbers: number[]; status: string; subscription: string } {
  const p = b.entry?.[0]?.resource as Parameters;
  const get = (n: string) => p.parameter?.find((x) => x.name === n);
  return {
    subscription: get('subscription')?.valueReference?.reference ?? '',
    type: get('type')?.valueCode ?? '',
    status: get('status')?.valueCode ?? '',
    numbers: (p.parameter ?? [])
      .filter((x) => x.name === 'notification-event')
      .map((x) => Number(x.part?.find((q) => q.name === 'event-number')?.valueString)),
  };
}

async function partnerCatalog(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'phi-gw-subs-catalog-'));
  cpSync(join(ROOT, 'subjects'), dir, { recursive: true });
  const file = join(dir, 'services.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const pair = await generateKeyPair('ES384', { extractable: true });
  key = pair.privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'ph-test', alg: 'ES384' };
  const services = doc.get('services') as {
    items: { get(k: string): unknown; setIn(p: unknown[], v: unknown): void }[];
  };
  const ph = services.items.find((s) => s.get('id') === 'public-health');
  ph?.setIn(['partner', 'jwks', 'keys'], doc.createNode([jwk]));
  ph?.setIn(['partner', 'restHooks'], doc.createNode([hookUrl, hookUrl2]));
  // Another partner, to ask for public-health's subscriptions.
  services.items
    .find((s) => s.get('id') === 'partner-payer')
    ?.setIn(['partner', 'jwks', 'keys'], doc.createNode([jwk]));
  ph?.setIn(['partner', 'rateLimit'], doc.createNode({ max: 1000, windowSeconds: 60 }));
  writeFileSync(file, doc.toString());
  return dir;
}

/** The status of every POST /Subscription and DELETE /Subscription/[id] answered, for the audit test. */
const answered: { interaction: 'create' | 'delete'; status: number }[] = [];

function call(
  url: string,
  method: string,
  opts: { body?: unknown; token?: string } = {},
): Promise<{ status: number; headers: Record<string, unknown>; text: string; json: Record<string, unknown> }> {
  const path = new URL(url).pathname;
  const interaction =
    method === 'POST' && path === '/Subscription'
      ? 'create'
      : method === 'DELETE' && path.startsWith('/Subscription/')
        ? 'delete'
        : undefined;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/fhir+json';
    const req = request(url, { method, ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (interaction !== undefined) answered.push({ interaction, status: res.statusCode ?? 0 });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json: JSON.parse(text || '{}') as Record<string, unknown>,
        });
      });
    });
    req.on('error', reject);
    req.end(
      opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
    );
  });
}

async function accessToken(g: Gateway, scope = 'system/Immunization.rs', client = 'public-health'): Promise<string> {
  const assertion = await new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES384', kid: 'ph-test', typ: 'JWT' })
    .setIssuer(client)
    .setSubject(client)
    .setAudience(`${BASE_URL}/auth/token`)
    .setExpirationTime('4m')
    .sign(key);
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    scope,
  });
  const r = await new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
    const req = request(
      `${g.url}/auth/token`,
      { method: 'POST', ca, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(form.toString());
  });
  expect(r.status).toBe(200);
  return r.json['access_token'] as string;
}

/** An Immunization with a direct identifier planted in elements outside the immunization-iis profile. */
function immunization(n: number): Immunization {
  return {
    resourceType: 'Immunization',
    id: `imm-${n}`,
    status: 'completed',
    vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '140' }], text: `dose ${n}` },
    patient: { reference: 'Patient/p-1' },
    occurrenceDateTime: '2024-10-01',
    lotNumber: `LOT-${n}`,
    note: [{ text: `patient SSN ${PLANTED}` }],
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${PLANTED}</div>` },
    extension: [{ url: 'http://example.org/ssn', valueString: PLANTED }],
  };
}

/** A backport Subscription to the Immunization topic at `endpoint`, with channel extensions `ext`. */
function immunizationSubscription(endpoint: string, ext: object[] = [], content = 'full-resource'): object {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'IIS feed',
    criteria: TOPIC,
    channel: {
      ...(ext.length === 0 ? {} : { extension: ext }),
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: content }] },
    },
  };
}

let ehr: Awaited<ReturnType<TestStack['client']>> | undefined;
async function publish(from: number, to: number): Promise<void> {
  ehr ??= await stack.client('ehr');
  for (let n = from; n <= to; n++) {
    const r = await ehr.publish(immunization(n));
    expect(r.status).toBe('accepted');
  }
}

/** Waits until the receiver accepted notifications numbered 1..n (bounded). */
function acceptedUpTo(n: number): Promise<void> {
  return receiver.waiter.until(() => receiver.accepted().length >= n, 30_000, `${n} accepted notifications`);
}

let token: string;
let subId: string;
let patientSubId: string;
/** Requests the endpoint had seen for subId when its DELETE answered. */
let deletedAttempts = 0;
let subA: string;
let subB: string;
/** Subscriptions whose create or delete answered 500 while the audit trail refused writes (none of it recorded). */
const unaudited: string[] = [];

beforeAll(async () => {
  // The receiver's port must be in the catalog (restHooks) before the stack loads it; its certificate (the
  // stack's gateway certificate, for 127.0.0.1) exists only after.
  await receiver.listen();
  await receiver2.listen();
  hookUrl = `https://127.0.0.1:${receiver.port}/notify`;
  hookUrl2 = `https://127.0.0.1:${receiver2.port}/notify`;
  stack = await startTestStack({ config: { subjectsDir: await partnerCatalog(), gatewayPort: 0 } });
  const t = stack.nats.tls;
  if (t === undefined) throw new Error('expected an mTLS stack');
  ca = readFileSync(t.ca.certFile, 'utf8');
  const pem = { key: readFileSync(t.gateway.keyFile, 'utf8'), cert: readFileSync(t.gateway.certFile, 'utf8') };
  receiver.secure(pem);
  receiver2.secure(pem);
  const start = async (n: number): Promise<Gateway> =>
    startTestGateway(stack, n, `gw-subs-${n}`, {
      config: { ...stack.config, gatewayBaseUrl: BASE_URL },
      partnerAccess: async (service) => ({
        nc: await stack.connectAs(serviceIdentity(service), `gateway-${n}-${service}`),
        keys: stack.keys(service),
        peers: stack.peers,
      }),
      restHookCa: ca,
      retry: { baseMs: 20, maxMs: 200 },
      leaseMs: 1_500,
      heartbeatMinS: 1,
    });
  gws = [await start(1), await start(2)];
  token = await accessToken(gws[0] as Gateway);
}, 120_000);

afterAll(async () => {
  for (const g of gws) await g.stop();
  await receiver.close();
  await receiver2.close();
  await stack?.stop();
});

describe('R4 topic-based Subscriptions (Backport IG)', () => {
  it('lists the partner topics in the CapabilityStatement and refuses a Subscription outside the registration', async () => {
    const g = gws[0] as Gateway;
    const meta = await call(`${g.url}/metadata`, 'GET');
    expect(fhirSchemaErrors(meta.json)).toEqual([]);
    const rest = (
      meta.json['rest'] as { resource: { type: string; extension?: { valueCanonical?: string }[] }[] }[]
    )[0];
    const sub = rest?.resource.find((r) => r.type === 'Subscription');
    expect(sub?.extension?.map((e) => e.valueCanonical)).toContain(TOPIC);

    const good = {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'IIS feed',
      criteria: TOPIC,
      channel: {
        type: 'rest-hook',
        endpoint: hookUrl,
        payload: 'application/fhir+json',
        _payload: {
          extension: [
            {
              url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content',
              valueCode: 'full-resource',
            },
          ],
        },
      },
    };
    const noToken = await call(`${g.url}/Subscription`, 'POST', { body: good });
    expect(noToken.status).toBe(401);
    expect(fhirSchemaErrors(noToken.json)).toEqual([]);
    // A body that is not JSON is refused before the route's handler runs (and audited alike).
    expect((await call(`${g.url}/Subscription`, 'POST', { body: '{"resourceType":', token })).status).toBe(400);
    for (const [body, path] of [
      [
        { ...good, channel: { ...good.channel, endpoint: 'https://elsewhere.example/hook' } },
        'Subscription.channel.endpoint',
      ],
      [{ ...good, criteria: `${TOPIC_BASE}Coverage` }, 'Subscription.criteria'],
      [{ ...good, channel: { ...good.channel, type: 'websocket' } }, 'Subscription.channel.type'],
    ] as const) {
      const r = await call(`${g.url}/Subscription`, 'POST', { body, token });
      expect(r.status).toBe(400);
      expect(fhirSchemaErrors(r.json)).toEqual([]);
      expect(r.json).toMatchObject({
        issue: [{ details: { coding: [{ code: 'E_SUBSCRIPTION_INVALID' }] }, expression: [path] }],
      });
      expect(r.text).not.toContain('elsewhere.example');
    }
    expect(receiver.got).toEqual([]); // no handshake for a refused subscription

    const created = await call(`${g.url}/Subscription`, 'POST', { body: good, token });
    expect(created.status).toBe(201);
    expect(fhirSchemaErrors(created.json)).toEqual([]);
    expect(created.json).toMatchObject({ resourceType: 'Subscription', status: 'active', criteria: TOPIC });
    subId = created.json['id'] as string;
    expect(created.headers['location']).toBe(`${BASE_URL}/Subscription/${subId}`);
    // The handshake reached the endpoint first.
    const handshake = JSON.parse(receiver.got[0]?.body ?? '{}') as Bundle;
    expect(fhirSchemaErrors(handshake)).toEqual([]);
    expect(statusOf(handshake)).toMatchObject({ type: 'handshake', numbers: [] });
    // A second instance reads the same subscription from NATS.
    const read = await call(`${(gws[1] as Gateway).url}/Subscription/${subId}`, 'GET', { token });
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ id: subId, status: 'active' });
  });

  it('notifies with signed history Bundles holding only the profile’s elements, numbered 1, 2, 3', async () => {
    await publish(1, 3);
    await acceptedUpTo(3);
    const jwks = createLocalJWKSet(
      (await call(`${(gws[0] as Gateway).url}/.well-known/jwks.json`, 'GET')).json as { keys: JWK[] },
    );
    for (const g of receiver.got) {
      expect(g.body).not.toContain(PLANTED);
      // RFC 7515 Appendix F: the detached payload is put back (base64url) between the two dots.
      const [h, , s] = (g.signature ?? '').split('.');
      const { payload } = await compactVerify(`${h}.${Buffer.from(g.body).toString('base64url')}.${s}`, jwks);
      expect(Buffer.from(payload).toString('utf8')).toBe(g.body);
    }
    const acc = receiver.accepted();
    expect(acc.map(([n]) => n)).toEqual([1, 2, 3]);
    for (const [, b] of acc) {
      expect(fhirSchemaErrors(b)).toEqual([]);
      expect(b.type).toBe('history');
      expect(b.entry?.[0]?.resource?.resourceType).toBe('Parameters');
      const imm = b.entry?.[1]?.resource as Immunization & Record<string, unknown>;
      expect(imm.meta?.profile).toEqual([stack.catalog.profiles.get('immunization-iis')?.url]);
      // Withheld top-level elements arrive as data-absent-reason markers only (markMasked), never their values.
      expect(imm['note']).toEqual([MASKED]);
      expect(imm['extension']).toBeUndefined();
      expect(imm['text']).toBeUndefined();
      expect(imm.lotNumber).toMatch(/^LOT-[123]$/);
    }
    expect(acc.map(([, b]) => (b.entry?.[1]?.resource as Immunization).lotNumber)).toEqual(['LOT-1', 'LOT-2', 'LOT-3']);
  });

  it('keeps every event while the receiver fails (503, then a closed port) and delivers each once, in order', async () => {
    const g = gws[0] as Gateway;
    receiver.mode = 503;
    const before = receiver.got.length;
    await publish(4, 5);
    await receiver.waiter.until(() => receiver.got.length >= before + 4, 30_000, 'four refused attempts');
    const st = await call(`${g.url}/Subscription/${subId}/$status`, 'GET', { token });
    expect(fhirSchemaErrors(st.json)).toEqual([]);
    const status = (st.json as unknown as Bundle).entry?.[0]?.resource as Parameters;
    expect(status.parameter?.find((p) => p.name === 'status')?.valueCode).toBe('error');
    // Closed port: nobody answers at all.
    await receiver.close();
    await publish(6, 6);
    receiver.mode = 200;
    await receiver.listen();
    await acceptedUpTo(6);
    expect(receiver.accepted().map(([n]) => n)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(receiver.accepted().map(([, b]) => (b.entry?.[1]?.resource as Immunization).lotNumber)).toEqual([
      'LOT-1',
      'LOT-2',
      'LOT-3',
      'LOT-4',
      'LOT-5',
      'LOT-6',
    ]);
    const after = await call(`${g.url}/Subscription/${subId}`, 'GET', { token });
    expect(after.json['status']).toBe('active');
  });

  it('replays events by number with $events, the same projections the notifications carried', async () => {
    const r = await call(
      `${(gws[1] as Gateway).url}/Subscription/${subId}/$events?eventsSinceNumber=2&eventsUntilNumber=4`,
      'GET',
      { token },
    );
    expect(r.status).toBe(200);
    const b = r.json as unknown as Bundle;
    expect(fhirSchemaErrors(b)).toEqual([]);
    expect(statusOf(b)).toMatchObject({ type: 'query-event', numbers: [2, 3, 4] });
    const notified = new Map(receiver.accepted().map(([n, nb]) => [n, nb.entry?.[1]?.resource]));
    expect(b.entry?.slice(1).map((e) => e.resource)).toEqual([2, 3, 4].map((n) => notified.get(n)));
    expect(r.text).not.toContain(PLANTED);
    const bad = await call(`${(gws[1] as Gateway).url}/Subscription/${subId}/$events?eventsSinceNumber=x`, 'GET', {
      token,
    });
    expect(bad.status).toBe(400);
    expect(fhirSchemaErrors(bad.json)).toEqual([]);
  });

  it('reads a notified copy with GET /[type]/[id]: the projection its notification carried; 404, 403, 401', async () => {
    const g = gws[1] as Gateway;
    const notified = receiver.accepted()[1]?.[1].entry?.[1]?.resource as Immunization;
    expect(notified.id).toBeDefined();
    const r = await call(`${g.url}/Immunization/${notified.id}`, 'GET', { token });
    expect(r.status, r.text).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(fhirSchemaErrors(r.json)).toEqual([]);
    expect(r.json).toEqual(notified);
    expect(r.text).not.toContain(PLANTED);
    for (const [url, tok, status, code, path] of [
      [`${g.url}/Immunization/no-such-copy`, token, 404, 'E_RESOURCE_UNKNOWN', 'id'],
      [`${g.url}/Coverage/${notified.id}`, token, 404, 'E_RESOURCE_UNKNOWN', 'type'],
      [
        `${g.url}/Immunization/${notified.id}`,
        await accessToken(g, 'system/Immunization.s'),
        403,
        'E_PARTNER_SCOPE',
        'scope',
      ],
      [`${g.url}/Immunization/${notified.id}`, undefined, 401, 'E_PARTNER_AUTH', 'Authorization'],
    ] as const) {
      const x = await call(url, 'GET', tok === undefined ? {} : { token: tok });
      expect(x.status, url).toBe(status);
      expect(fhirSchemaErrors(x.json)).toEqual([]);
      expect(x.json).toMatchObject({ issue: [{ details: { coding: [{ code }] }, expression: [path] }] });
    }
  });

  it('id-only: each notification names <base>/Patient/<pseudonym> without the resource; GET returns the projection', async () => {
    const g = gws[0] as Gateway;
    const patientToken = await accessToken(g, 'system/Patient.rs');
    const created = await call(`${g.url}/Subscription`, 'POST', {
      token: patientToken,
      body: {
        resourceType: 'Subscription',
        status: 'requested',
        reason: 'IIS demographics',
        criteria: `${TOPIC_BASE}Patient`,
        channel: {
          type: 'rest-hook',
          endpoint: hookUrl,
          payload: 'application/fhir+json',
          _payload: {
            extension: [
              {
                url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content',
                valueCode: 'id-only',
              },
            ],
          },
        },
      },
    });
    expect(created.status, created.text).toBe(201);
    expect(fhirSchemaErrors(created.json)).toEqual([]);
    patientSubId = created.json['id'] as string;
    const registration = await stack.client('registration');
    const patient: Patient = {
      resourceType: 'Patient',
      id: 'pat-id-only-1',
      name: [{ family: 'Okonkwo', given: ['Ada'] }],
      gender: 'female',
      birthDate: '1980-02-03',
      telecom: [{ system: 'phone', value: PLANTED }],
    };
    expect((await registration.publish(patient)).status).toBe('accepted');
    await receiver.waiter.until(() => receiver.accepted(patientSubId).length >= 1, 30_000, 'a Patient notification');
    const [number, b] = receiver.accepted(patientSubId)[0] as [number, Bundle];
    expect(number).toBe(1);
    expect(fhirSchemaErrors(b)).toEqual([]);
    const raw = JSON.stringify(b);
    expect(raw).not.toContain(PLANTED);
    expect(raw).not.toContain('Okonkwo');
    expect(b.entry).toHaveLength(2);
    const entry = b.entry?.[1];
    expect(entry?.resource).toBeUndefined();
    expect(entry?.request).toEqual({ method: 'POST', url: 'Patient' });
    const match = new RegExp(`^${BASE_URL}/Patient/([A-Za-z0-9.-]+)$`).exec(entry?.fullUrl ?? '');
    const id = match?.[1] as string;
    // patient-iis does not deliver Patient.id: the copy carries public-health's keyed pseudonym of it.
    expect(id).toBeDefined();
    expect(id).not.toBe(patient.id);
    const focus = (b.entry?.[0]?.resource as Parameters).parameter
      ?.find((p) => p.name === 'notification-event')
      ?.part?.find((p) => p.name === 'focus');
    expect(focus?.valueReference?.reference).toBe(entry?.fullUrl);

    const r = await call(`${(gws[1] as Gateway).url}/Patient/${id}`, 'GET', { token: patientToken });
    expect(r.status, r.text).toBe(200);
    expect(fhirSchemaErrors(r.json)).toEqual([]);
    const copy = r.json as unknown as Patient & Record<string, unknown>;
    expect(copy.id).toBe(id);
    expect(copy.meta?.profile).toEqual([stack.catalog.profiles.get('patient-iis')?.url]);
    expect(copy.name).toEqual(patient.name);
    expect(copy.birthDate).toBe(patient.birthDate);
    expect(r.text).not.toContain(PLANTED);
    // A token without Patient read, an id never notified.
    const forbidden = await call(`${g.url}/Patient/${id}`, 'GET', { token });
    expect(forbidden.status).toBe(403);
    expect(fhirSchemaErrors(forbidden.json)).toEqual([]);
    const unknown = await call(`${g.url}/Patient/${patient.id}`, 'GET', { token: patientToken });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({
      issue: [{ code: 'not-found', details: { coding: [{ code: 'E_RESOURCE_UNKNOWN' }] } }],
    });
    expect(unknown.text).not.toContain(patient.id);
  });

  it('two gateways never deliver one event number twice; stopping the lease holder hands its topic to the other', async () => {
    // Both gateways have run since the start: each number so far was accepted exactly once, all by one of them.
    const deliveredBy = (): Map<number, string[]> => {
      const by = new Map<number, string[]>();
      for (const r of stack.logs.records())
        if (r['event'] === 'gateway.subscription.notified' && r['subscription'] === subId)
          by.set(r['number'] as number, [...(by.get(r['number'] as number) ?? []), r['holder'] as string]);
      return by;
    };
    const first = deliveredBy();
    expect([...first.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    const holders = new Set([...first.values()].flat());
    expect(holders.size).toBe(1);
    expect([...first.values()].every((h) => h.length === 1)).toBe(true);
    const holder = [...holders][0] as string;
    const stopped = gws.find((g) => g.instanceId === holder) as Gateway;
    const other = gws.find((g) => g.instanceId !== holder) as Gateway;
    await stopped.stop();
    gws = [other];
    await publish(7, 8);
    await acceptedUpTo(8);
    const numbers = receiver.accepted().map(([n]) => n);
    expect(numbers).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // Logged once the delivery is acknowledged, just after the receiver answered.
    await stack.logs.until(
      (r) => r['event'] === 'gateway.subscription.notified' && r['number'] === 8,
      'event 8 logged',
    );
    const after = deliveredBy();
    expect([7, 8].map((n) => after.get(n))).toEqual([[other.instanceId], [other.instanceId]]);
  });

  it('DELETE switches a subscription off: nothing is sent after the answer, GET answers 410, $events still replays', async () => {
    const g = gws[0] as Gateway;
    // The endpoint refuses, so event 9 is being retried when the delete lands.
    receiver.mode = 503;
    await publish(9, 9);
    await receiver.waiter.until(
      () => receiver.of(subId).some((x) => x.status === 503 && statusOf(x.bundle).numbers[0] === 9),
      30_000,
      'a refused attempt of event 9',
    );
    // Only the partner that created it may delete it; an unknown id answers alike.
    const payer = await accessToken(g, 'system/Coverage.rs', 'partner-payer');
    for (const [url, tok] of [
      [`${g.url}/Subscription/${subId}`, payer],
      [`${g.url}/Subscription/${randomUUID()}`, token],
    ] as const) {
      const r = await call(url, 'DELETE', { token: tok });
      expect(r.status).toBe(404);
      expect(fhirSchemaErrors(r.json)).toEqual([]);
      expect(r.json).toMatchObject({ issue: [{ details: { coding: [{ code: 'E_SUBSCRIPTION_UNKNOWN' }] } }] });
    }
    const del = await call(`${g.url}/Subscription/${subId}`, 'DELETE', { token });
    expect(del.status).toBe(204);
    deletedAttempts = receiver.of(subId).length;
    receiver.mode = 200;
    const gone = await call(`${g.url}/Subscription/${subId}`, 'GET', { token });
    expect(gone.status).toBe(410);
    expect(fhirSchemaErrors(gone.json)).toEqual([]);
    expect(gone.json).toMatchObject({
      issue: [
        {
          code: 'not-found',
          details: { coding: [{ code: 'E_SUBSCRIPTION_DELETED' }] },
          expression: ['Subscription.id'],
        },
      ],
    });
    expect((await call(`${g.url}/Subscription/${subId}`, 'DELETE', { token })).status).toBe(204);
    const st = await call(`${g.url}/Subscription/${subId}/$status`, 'GET', { token });
    expect(fhirSchemaErrors(st.json)).toEqual([]);
    expect(statusOf(st.json as unknown as Bundle).status).toBe('off');
    // The event it numbered but never delivered stays readable until it expires.
    const ev = await call(`${g.url}/Subscription/${subId}/$events?eventsSinceNumber=8&eventsUntilNumber=9`, 'GET', {
      token,
    });
    expect(ev.status).toBe(200);
    expect(fhirSchemaErrors(ev.json)).toEqual([]);
    expect(statusOf(ev.json as unknown as Bundle)).toMatchObject({ numbers: [8, 9], status: 'off' });
    const cap = await call(`${g.url}/metadata`, 'GET');
    const subRes = (
      cap.json['rest'] as { resource: { type: string; interaction: { code: string }[] }[] }[]
    )[0]?.resource.find((r) => r.type === 'Subscription');
    expect(subRes?.interaction.map((i) => i.code)).toContain('delete');
  });

  it('two subscriptions to one topic: one endpoint down does not hold the other back; each gets every event once, in order', async () => {
    const g = gws[0] as Gateway;
    const ids: string[] = [];
    for (const url of [hookUrl, hookUrl2]) {
      const r = await call(`${g.url}/Subscription`, 'POST', { body: immunizationSubscription(url), token });
      expect(r.status, r.text).toBe(201);
      expect(r.json['status']).toBe('active');
      ids.push(r.json['id'] as string);
    }
    [subA, subB] = ids as [string, string];
    // The second endpoint goes down; the first receives everything at once.
    await receiver2.close();
    await publish(10, 13);
    await receiver.waiter.until(() => receiver.accepted(subA).length >= 4, 30_000, 'four notifications of A');
    expect(receiver.accepted(subA).map(([n]) => n)).toEqual([1, 2, 3, 4]);
    expect(receiver2.accepted(subB)).toEqual([]);
    // B's events are numbered and held while its endpoint is down.
    const st = await call(`${g.url}/Subscription/${subB}/$status`, 'GET', { token });
    const params = (st.json as unknown as Bundle).entry?.[0]?.resource as Parameters;
    expect(params.parameter?.find((p) => p.name === 'events-since-subscription-start')?.valueString).toBe('4');
    // Back up: B gets all it missed, in order, then both get the next event.
    await receiver2.listen();
    await receiver2.waiter.until(() => receiver2.accepted(subB).length >= 4, 30_000, 'four notifications of B');
    await publish(14, 14);
    await receiver.waiter.until(() => receiver.accepted(subA).length >= 5, 30_000, 'five notifications of A');
    await receiver2.waiter.until(() => receiver2.accepted(subB).length >= 5, 30_000, 'five notifications of B');
    for (const [r, id] of [
      [receiver, subA],
      [receiver2, subB],
    ] as const) {
      const acc = r.accepted(id);
      expect(acc.map(([n]) => n)).toEqual([1, 2, 3, 4, 5]);
      expect(acc.map(([, b]) => (b.entry?.[1]?.resource as Immunization).lotNumber)).toEqual([
        'LOT-10',
        'LOT-11',
        'LOT-12',
        'LOT-13',
        'LOT-14',
      ]);
      for (const [, b] of acc) expect(fhirSchemaErrors(b)).toEqual([]);
    }
    // Each receiver got only its own subscription's events, and the deleted one got nothing after its delete.
    expect(receiver.accepted(subB)).toEqual([]);
    expect(receiver2.accepted(subA)).toEqual([]);
    expect(receiver.of(subId)).toHaveLength(deletedAttempts);
    // Both read the same copy back; $events of B replays what A was sent.
    const ev = await call(`${g.url}/Subscription/${subB}/$events?eventsSinceNumber=1&eventsUntilNumber=5`, 'GET', {
      token,
    });
    expect(ev.json['entry']).toHaveLength(6);
    expect((ev.json as unknown as Bundle).entry?.slice(1).map((e) => e.resource)).toEqual(
      receiver.accepted(subA).map(([, b]) => b.entry?.[1]?.resource),
    );
  });

  it('heartbeats: backport-heartbeat-period is bounded; an idle subscription gets heartbeats, a busy one none', async () => {
    const g = gws[0] as Gateway;
    const period = (v: number) => [{ url: `${BACKPORT}backport-heartbeat-period`, valueUnsignedInt: v }];
    for (const v of [0, 86_401]) {
      const r = await call(`${g.url}/Subscription`, 'POST', {
        body: immunizationSubscription(hookUrl2, period(v)),
        token,
      });
      expect(r.status).toBe(400);
      expect(fhirSchemaErrors(r.json)).toEqual([]);
      expect(r.json).toMatchObject({
        issue: [
          { details: { coding: [{ code: 'E_SUBSCRIPTION_INVALID' }] }, expression: ['Subscription.channel.extension'] },
        ],
      });
    }
    const created = await call(`${g.url}/Subscription`, 'POST', {
      body: immunizationSubscription(hookUrl2, period(2), 'empty'),
      token,
    });
    expect(created.status, created.text).toBe(201);
    expect(fhirSchemaErrors(created.json)).toEqual([]);
    const hb = created.json['id'] as string;
    expect(JSON.stringify(created.json['channel'])).toContain('backport-heartbeat-period');
    // Events faster than the period: each published once the previous one was notified.
    for (let n = 15; n <= 19; n++) {
      await publish(n, n);
      await receiver2.waiter.until(() => receiver2.accepted(hb).length >= n - 14, 30_000, `event ${n - 14} of ${hb}`);
    }
    // Idle: heartbeats follow.
    const heartbeats = () => receiver2.of(hb).filter((x) => statusOf(x.bundle).type === 'heartbeat');
    await receiver2.waiter.until(() => heartbeats().length >= 2, 30_000, 'two heartbeats');
    const seen = receiver2.of(hb);
    const types = seen.map((x) => statusOf(x.bundle).type);
    const first = types.indexOf('event-notification');
    const last = types.lastIndexOf('event-notification');
    expect(types[0]).toBe('handshake');
    expect(types.filter((t) => t === 'event-notification')).toHaveLength(5);
    // Between events a heartbeat comes only after a whole period without a notification (a loaded machine may take
    // that long to carry one event): never while they flow faster than the period.
    for (let i = first + 1; i < last; i++) {
      if (types[i] !== 'heartbeat') continue;
      expect((seen[i]?.at ?? 0) - (seen[i - 1]?.at ?? 0), `heartbeat at request ${i}`).toBeGreaterThan(1_500);
    }
    expect(types.slice(last + 1).filter((t) => t === 'heartbeat').length).toBeGreaterThanOrEqual(2);
    const jwks = createLocalJWKSet((await call(`${g.url}/.well-known/jwks.json`, 'GET')).json as { keys: JWK[] });
    for (const x of heartbeats().slice(-2)) {
      expect(fhirSchemaErrors(x.bundle)).toEqual([]);
      expect(x.bundle.entry).toHaveLength(1);
      const p = x.bundle.entry?.[0]?.resource as Parameters;
      expect(p.parameter?.find((q) => q.name === 'events-since-subscription-start')?.valueString).toBe('5');
      expect(statusOf(x.bundle).numbers).toEqual([]);
      const [h, , sig] = (x.signature ?? '').split('.');
      await compactVerify(`${h}.${Buffer.from(x.body).toString('base64url')}.${sig}`, jwks);
    }
    const del = await call(`${g.url}/Subscription/${hb}`, 'DELETE', { token });
    expect(del.status).toBe(204);
  });

  it('audits a create and a delete before answering: while the trail refuses writes, 500 and no unaudited change', async () => {
    const g = gws[0] as Gateway;
    const created = await call(`${g.url}/Subscription`, 'POST', { body: immunizationSubscription(hookUrl2), token });
    expect(created.status).toBe(201);
    const id = created.json['id'] as string;
    // The admin makes PHI_AUDIT refuse every new record (a message size limit below any record), then restores it.
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'subs-audit-admin');
    const jsm = await admin.jetstreamManager();
    const { config } = await jsm.streams.info(STREAMS.audit);
    await jsm.streams.update(STREAMS.audit, { ...config, max_msg_size: 16 });
    const handshakes = receiver2.got.length;
    try {
      const del = await call(`${g.url}/Subscription/${id}`, 'DELETE', { token });
      expect(del.status).toBe(500);
      expect(fhirSchemaErrors(del.json)).toEqual([]);
      // Not recorded, not done: the subscription is as it was.
      expect((await call(`${g.url}/Subscription/${id}`, 'GET', { token })).json).toMatchObject({
        id,
        status: 'active',
      });
      // A create whose record cannot be stored: 500, and the subscription its handshake named is switched off.
      const refused = await call(`${g.url}/Subscription`, 'POST', { body: immunizationSubscription(hookUrl2), token });
      expect(refused.status).toBe(500);
      expect(fhirSchemaErrors(refused.json)).toEqual([]);
    } finally {
      await jsm.streams.update(STREAMS.audit, config);
      await admin.close();
    }
    const named = statusOf(JSON.parse(receiver2.got[handshakes]?.body ?? '{}') as Bundle).subscription;
    const orphan = named.slice(`${BASE_URL}/Subscription/`.length);
    expect(orphan).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call(`${g.url}/Subscription/${orphan}`, 'GET', { token })).status).toBe(410);
    expect(stack.logs.text()).toContain('gateway.audit.unrecorded');
    // The trail writable again, the partner's retried DELETE is recorded and done.
    expect((await call(`${g.url}/Subscription/${id}`, 'DELETE', { token })).status).toBe(204);
    expect((await call(`${g.url}/Subscription/${id}`, 'GET', { token })).status).toBe(410);
    unaudited.push(id, orphan);
  });

  it('records every notification and every $events read as a disclosure AuditEvent naming the deliveries', async () => {
    for (const g of gws) await g.stop(); // seals each gateway's chain
    gws = [];
    const nc = await stack.connect('audit-reader');
    const events: AuditEvent[] = [];
    for await (const r of readAuditRecords(nc)) {
      if (!r.subject.includes('gw-subs-')) continue;
      events.push(...(decodeRecord(r.data)?.events ?? []));
    }
    await nc.close();
    const disclosures = events.filter((e) => e.subtype?.[0]?.code === 'disclose');
    for (const e of disclosures) expect(fhirSchemaErrors(e)).toEqual([]);
    // IHE BALP rules (test/helpers/balp.ts), as for every other kind in test/audit/balp.int.test.ts.
    expect(disclosures.flatMap((e) => balpProblems(e).map((m) => `${e.id ?? ''}: ${m}`))).toEqual([]);
    expect(JSON.stringify(events)).not.toContain(PLANTED);
    const numbersOf = (e: AuditEvent): string =>
      e.entity?.find((x) => x.what?.identifier?.value === subId)?.detail?.find((d) => d.type === 'event-numbers')
        ?.valueString ?? '';
    // One pushed notification per event number, each naming its one broker delivery; the partner is the recipient.
    const pushed = disclosures.filter((e) => e.action === 'E' && numbersOf(e) !== '');
    expect(pushed.map(numbersOf).sort((a, b) => Number(a) - Number(b))).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
    ]);
    for (const e of pushed) {
      expect(e.entity?.filter((x) => x.name === 'delivery')).toHaveLength(1);
      expect(e.agent.find((a) => a.who?.identifier?.value === 'public-health')).toBeDefined();
    }
    // The $events read of 2..4 and the GET of event 2's copy, each asked by the partner.
    const operationOf = (e: AuditEvent): string =>
      e.entity?.[0]?.detail?.find((d) => d.type === 'operation')?.valueString ?? '';
    const read = disclosures.filter((e) => e.action === 'R' && numbersOf(e) !== '');
    expect(read.map((e) => `${operationOf(e)} ${numbersOf(e)}`).sort()).toEqual([
      'events 2 3 4',
      'events 8 9',
      'read 2',
    ]);
    for (const e of read)
      expect(e.agent.find((a) => a.who?.identifier?.value === 'public-health')?.requestor).toBe(true);
    // Two subscriptions to one topic: each accepted event of each is its own disclosure (events 10–19: LOT-10 to
    // LOT-14 in their own test, LOT-15 to LOT-19 in the heartbeat test).
    for (const id of [subA, subB]) {
      const of = (e: AuditEvent): string =>
        e.entity?.find((x) => x.what?.identifier?.value === id)?.detail?.find((d) => d.type === 'event-numbers')
          ?.valueString ?? '';
      expect(
        disclosures
          .filter((e) => e.action === 'E' && of(e) !== '')
          .map((e) => Number(of(e)))
          .sort((a, b) => a - b),
      ).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
    // Every POST /Subscription and DELETE /Subscription/[id] answered is a RESTful AuditEvent with its status (no PHI,
    // not a disclosure), but the two 500s answered while the trail refused writes; nothing of those is recorded.
    const requests = events.filter((e) => e.subtype?.[0]?.system === 'http://hl7.org/fhir/restful-interaction');
    for (const e of requests) expect(fhirSchemaErrors(e)).toEqual([]);
    expect(requests.flatMap((e) => balpProblems(e).map((m) => `${e.id ?? ''}: ${m}`))).toEqual([]);
    const detail = (e: AuditEvent, type: string): string | undefined =>
      e.entity?.flatMap((x) => x.detail ?? []).find((d) => d.type === type)?.valueString;
    const names = (e: AuditEvent, id: string): boolean =>
      e.entity?.some((x) => x.what?.identifier?.value === id) === true;
    expect(requests.map((e) => `${e.subtype?.[0]?.code ?? ''} ${detail(e, 'http-status') ?? ''}`).sort()).toEqual(
      answered
        .filter((a) => a.status !== 500)
        .map((a) => `${a.interaction} ${a.status}`)
        .sort(),
    );
    expect(answered.filter((a) => a.status === 500)).toHaveLength(2);
    for (const e of requests) {
      const created = e.subtype?.[0]?.code === 'create';
      expect(e.action).toBe(created ? 'C' : 'D');
      // Each answered one names its subscription; a refusal says why, by code and element path.
      if (detail(e, 'http-status')?.startsWith('2') === true) {
        expect(e.outcome).toBe('0');
        expect(e.entity?.some((x) => x.what?.identifier?.system === 'urn:phi-broker:subscription')).toBe(true);
        if (created) expect(detail(e, 'handshake-status')).toBe('200');
      } else expect([e.outcome, e.outcomeDesc?.startsWith('E_')]).toEqual(['4', true]);
    }
    const outcomes = requests.map((e) => e.outcomeDesc).filter((d) => d !== undefined);
    for (const d of [
      'E_PARTNER_AUTH at Authorization',
      'E_PARTNER_REQUEST',
      'E_SUBSCRIPTION_INVALID at Subscription.channel.endpoint',
      'E_SUBSCRIPTION_INVALID at Subscription.criteria',
      'E_SUBSCRIPTION_UNKNOWN at Subscription.id',
    ])
      expect(outcomes).toContain(d);
    // The deletes of subId (the repeated one too), of the heartbeat subscription, and the retried one after the
    // trail was writable again; the 500s left nothing: the create that failed has no record at all.
    const deleted = (id: string) =>
      requests.filter((e) => e.subtype?.[0]?.code === 'delete' && e.outcome === '0' && names(e, id));
    expect(deleted(subId)).toHaveLength(2);
    expect(deleted(unaudited[0] ?? '')).toHaveLength(1);
    expect(requests.filter((e) => names(e, unaudited[1] ?? ''))).toEqual([]);
    for (const e of deleted(subId))
      expect(e.agent.find((a) => a.requestor)?.who?.identifier?.value).toBe('public-health');
    // The id-only Patient subscription: its notification pushed, and the GET of its copy.
    const ofPatient = (e: AuditEvent): boolean =>
      e.entity?.some((x) => x.what?.identifier?.value === patientSubId) === true;
    expect(
      disclosures
        .filter(ofPatient)
        .map((e) => `${e.action} ${operationOf(e)}`)
        .sort(),
    ).toEqual(['E notify', 'R read']);
  });
});

describe.skipIf(NOT_BUILT !== undefined)('key rotations while a Subscription is live', () => {
  const versions = (party: string) => readServiceKeyVersions(stack.keysDir, party);
  /** Resolves once a log record after `mark` (a line count) matches. */
  const logged = (mark: number, what: string, match: (l: Record<string, unknown>) => boolean): Promise<void> =>
    stack.logs.waiter.until(
      () => stack.logs.lines.slice(mark).some((l) => match(JSON.parse(l) as Record<string, unknown>)),
      20_000,
      what,
    );
  const rotate = async (...args: string[]): Promise<void> => {
    const r = await runCli(
      [
        'keys',
        'rotate',
        ...args,
        '--overlap',
        '1h',
        '--subjects',
        stack.config.subjectsDir,
        '--data-dir',
        stack.config.dataDir,
      ],
      { env: stack.env },
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  };

  it('keys rotate --broker, then --service public-health: notifications keep flowing, each event number once, in order', async () => {
    const { root } = await ensureOperatorRootKey(stack.keysDir);
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'provision-keys');
    await publishDirectory(admin, stack.catalog, stack.keysDir, root, { create: true });
    await admin.close();
    // A broker, a publisher and a gateway that follow the directory, in place of the ones before.
    for (const g of gws) await g.stop();
    await stack.broker?.stop();
    stack.broker = await Broker.start({
      config: stack.config,
      catalog: stack.catalog,
      nc: await stack.connectAs(BROKER_IDENTITY, 'broker-dir'),
      keys: versions(BROKER_ID),
      peers: stack.peers,
      secrets: stack.secrets,
      logger: stack.logger.child({ broker: 'dir' }),
      keyDirectory: { root, reloadOwnKeys: () => versions(BROKER_ID) },
    });
    const pub = await PhiClient.connect({
      nc: await stack.connectAs(serviceIdentity('ehr'), 'ehr-dir'),
      ownsConnection: true,
      service: 'ehr',
      keys: versions('ehr'),
      peers: stack.peers,
      logger: stack.logger.child({ client: 'ehr-dir' }),
      keyDirectory: { root, reloadOwnKeys: () => versions('ehr') },
    });
    const g = await startTestGateway(stack, 3, 'gw-subs-keys', {
      config: { ...stack.config, gatewayBaseUrl: BASE_URL },
      partnerAccess: async (service) => ({
        nc: await stack.connectAs(serviceIdentity(service), `gateway-3-${service}`),
        keys: versions(service),
        peers: stack.peers,
      }),
      restHookCa: ca,
      retry: { baseMs: 20, maxMs: 200 },
      keyDirectory: { root, reloadOwnKeys: (party) => Promise.resolve(versions(party)) },
    });
    gws = [g];
    const created = await call(`${g.url}/Subscription`, 'POST', {
      body: immunizationSubscription(hookUrl),
      token: await accessToken(g),
    });
    expect(created.status, created.text).toBe(201);
    const id = created.json['id'] as string;
    // The deliveries to public-health on the wire: who signed each, and the KEKs it is sealed under.
    const tap = await stack.connect('deliveries-tap');
    const wire: { kid: string; keks: string[] }[] = [];
    tap.subscribe('phi.deliver.public-health.>', {
      callback: (_e, m) => {
        const env = JSON.parse(m.string()) as { kid: string; keys: { kek: string }[] };
        wire.push({ kid: env.kid, keks: env.keys.map((k) => k.kek) });
      },
    });
    await tap.flush();
    let lot = 100;
    const sendTwo = async (): Promise<void> => {
      for (let i = 0; i < 2; i++) expect((await pub.publish(immunization(lot++))).status).toBe('accepted');
      const n = lot - 100;
      await receiver.waiter.until(() => receiver.accepted(id).length >= n, 30_000, `${n} notifications`);
    };
    await sendTwo();

    let mark = stack.logs.lines.length;
    await rotate('--broker');
    await logged(
      mark,
      'the broker to sign with broker:sig:2',
      (l) => l['event'] === 'keys.own.rotated' && l['kid'] === 'broker:sig:2',
    );
    await logged(
      mark,
      'the publisher to apply the broker entry',
      (l) => l['event'] === 'keys.directory.applied' && l['client'] === 'ehr-dir' && l['party'] === BROKER_ID,
    );
    await sendTwo();

    mark = stack.logs.lines.length;
    await rotate('--service', 'public-health');
    await logged(
      mark,
      'the broker to apply the partner entry',
      (l) => l['event'] === 'keys.directory.applied' && l['broker'] === 'dir' && l['party'] === 'public-health',
    );
    await logged(
      mark,
      'the gateway to load public-health:sig:2',
      (l) => l['event'] === 'keys.own.rotated' && l['gateway'] === 3 && l['kid'] === 'public-health:sig:2',
    );
    await sendTwo();
    await tap.close();
    await pub.close();

    const acc = receiver.accepted(id);
    expect(acc.map(([n]) => n)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(acc.map(([, b]) => (b.entry?.[1]?.resource as Immunization).lotNumber)).toEqual([
      'LOT-100',
      'LOT-101',
      'LOT-102',
      'LOT-103',
      'LOT-104',
      'LOT-105',
    ]);
    for (const [, b] of acc) expect(fhirSchemaErrors(b)).toEqual([]);
    // They were signed with broker:sig:1, then broker:sig:2; the last sealed to public-health:enc:2.
    expect(wire.map((w) => w.kid)).toEqual(['broker:sig:1', 'broker:sig:1', ...Array<string>(4).fill('broker:sig:2')]);
    expect(wire.slice(-2).every((w) => w.keks.some((k) => k.split('~').includes('public-health:enc:2')))).toBe(true);
    expect(wire.slice(0, 4).some((w) => w.keks.some((k) => k.includes('public-health:enc:2')))).toBe(false);
  });
});
