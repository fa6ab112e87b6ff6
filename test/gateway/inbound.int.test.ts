// Inbound exchange through the partner gateway against a real nats-server (mTLS, the generated permissions), a real
// broker and two real HTTPS gateways on loopback ports sharing one public base URL: a third-party FHIR client
// (fhir-kit-client) with a token from the token endpoint creates a resource, posts a batch and a transaction, and
// billing (the internal subscriber) receives each projection; $process-message answers with a response message;
// each bad-input class yields its OperationOutcome code and HTTP status; 413, 415; a burst alternating between the
// two gateways gets exactly the partner's limit accepted across both, the rest 429 with Retry-After, every accepted
// request delivered; without the shared counters both fail closed (503, Retry-After); a retried Bundle.id on the second gateway is answered once, the same; a planted
// PHI value never appears in a refusal or in the logs. Every emitted resource validates against the FHIR R4 schema.
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Client } from 'fhir-kit-client';
import type { AuditEvent, Bundle, ExplanationOfBenefit, OperationOutcome } from 'fhir/r4.js';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { Agent } from 'undici';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { INBOUND_BODY_LIMIT } from '../../src/gateway/inbound.js';
import { runPartnerToken } from '../../src/cli/partner.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { ensureGatewayRateBucket } from '../../src/nats/setup.js';
import { jsApi } from '../../src/nats/jetstream-api.js';
import { ADMIN_IDENTITY, GATEWAY_IDENTITY } from '../../src/tls/identity.js';
import { RateCounter, rateKey, rateKeyClient } from '../../src/gateway/rate-limit.js';
import { gatewayChain, KV_BUCKETS } from '../../src/wire/names.js';
import { balpProblems } from '../helpers/balp.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { gatewayAuditEvents, startTestGateway } from '../helpers/gateway.js';
import { ROOT, Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

const BASE_URL = 'https://partners.example.test';
/** The payer's rate limit in this test's catalog: small, so a burst crosses it. */
const LIMIT = 40;
/** The loopback address the rate-limit burst comes from (the gateways listen on 127.0.0.1). */
const BURST_ADDRESS = '127.0.0.2';
/** A direct identifier planted in refused input: it must never come back or reach a log. */
const PLANTED = 'Zebulon Quartermaine-7731';

let stack: TestStack;
let gw: Gateway;
let gw2: Gateway;
let ca: string;
let key: CryptoKey;
let token: string;
let billing: PhiClient;
const received = new Map<string, ExplanationOfBenefit>();
const arrived = new Waiter();
/** Requests sent to each gateway's FHIR routes: each is one AuditEvent in its chain. */
const sent = new Map<Gateway, number>();

async function partnerCatalog(): Promise<{ subjects: string; key: CryptoKey }> {
  const dir = mkdtempSync(join(tmpdir(), 'phi-gateway-inbound-'));
  cpSync(join(ROOT, 'subjects'), dir, { recursive: true });
  const file = join(dir, 'services.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'payer-test', alg: 'ES384' };
  const services = doc.get('services') as {
    items: { get(k: string): unknown; setIn(p: unknown[], v: unknown): void }[];
  };
  const payer = services.items.find((s) => s.get('id') === 'partner-payer');
  payer?.setIn(['partner', 'jwks', 'keys'], doc.createNode([jwk]));
  payer?.setIn(['partner', 'rateLimit'], doc.createNode({ max: LIMIT, windowSeconds: 60 }));
  writeFileSync(file, doc.toString());
  return { subjects: dir, key: privateKey };
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

function send(
  g: Gateway,
  path: string,
  body: string,
  headers: Record<string, string> = {},
  counted = true,
  localAddress?: string,
): Promise<Answer> {
  if (counted) sent.set(g, (sent.get(g) ?? 0) + 1);
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', ca, headers, ...(localAddress === undefined ? {} : { localAddress }) };
    const req = request(`${g.url}${path}`, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: JSON.parse(text || '{}') });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const fhir = (
  g: Gateway,
  path: string,
  resource: unknown,
  extra: Record<string, string> = {},
  localAddress?: string,
): Promise<Answer> =>
  send(
    g,
    path,
    JSON.stringify(resource),
    { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}`, ...extra },
    true,
    localAddress,
  );

async function accessToken(g: Gateway, scope: string): Promise<string> {
  const assertion = await new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES384', kid: 'payer-test', typ: 'JWT' })
    .setIssuer('partner-payer')
    .setSubject('partner-payer')
    .setAudience(`${BASE_URL}/auth/token`)
    .setExpirationTime('4m')
    .sign(key);
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    scope,
  }).toString();
  const r = await send(g, '/auth/token', form, { 'content-type': 'application/x-www-form-urlencoded' }, false);
  expect(r.status, r.text).toBe(200);
  return r.json['access_token'] as string;
}

function eob(over: Record<string, unknown> = {}): ExplanationOfBenefit & Record<string, unknown> {
  return {
    resourceType: 'ExplanationOfBenefit',
    id: randomUUID(),
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'claim',
    patient: { reference: 'Patient/pat-inbound-1' },
    created: '2026-11-30T10:00:00Z',
    insurer: { display: 'Example Payer' },
    provider: { display: 'Example Clinic' },
    outcome: 'complete',
    insurance: [{ focal: true, coverage: { display: 'Example Plan' } }],
    ...over,
  } as ExplanationOfBenefit & Record<string, unknown>;
}

/** Waits until billing has received `n` ExplanationOfBenefit deliveries in all. */
const deliveries = (n: number): Promise<void> =>
  arrived.until(() => received.size >= n, 30_000, `${n} deliveries to billing (have ${received.size})`);

/** Publishes one more accepted resource and waits for it: anything published before it has been routed too. */
async function settle(): Promise<void> {
  const before = received.size;
  const r = await fhir(gw2, '/ExplanationOfBenefit', eob());
  expect(r.status, r.text).toBe(201);
  await deliveries(before + 1);
}

/** The OperationOutcome of a refusal: schema-valid, with the broker's code and path, never the planted value. */
function expectRefusal(r: Answer, status: number, code: string, path?: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/fhir\+json/);
  expect(fhirSchemaErrors(r.json)).toEqual([]);
  const issue = (r.json as unknown as OperationOutcome).issue[0];
  expect(issue?.details?.coding?.[0]).toEqual({ system: 'urn:phi-broker:error-code', code });
  if (path !== undefined) expect(issue?.expression).toEqual([path]);
  expect(r.text).not.toContain(PLANTED);
  expect(JSON.stringify(r.headers)).not.toContain(PLANTED);
}

beforeAll(async () => {
  const catalog = await partnerCatalog();
  key = catalog.key;
  stack = await startTestStack({ config: { subjectsDir: catalog.subjects, gatewayPort: 0 } });
  const tls = stack.nats.tls;
  if (tls === undefined) throw new Error('expected an mTLS stack');
  ca = readFileSync(tls.ca.certFile, 'utf8');
  const start = async (n: number): Promise<Gateway> =>
    startTestGateway(stack, n, `gw-inbound-${n}`, { config: { ...stack.config, gatewayBaseUrl: BASE_URL } });
  gw = await start(1);
  gw2 = await start(2);
  billing = await stack.client('billing');
  await billing.subscribe('ExplanationOfBenefit', (d) => {
    expect(d.provenance.publisher).toBe('partner-payer');
    received.set(d.provenance.messageId, d.resource);
    arrived.signal();
  });
  token = await accessToken(gw2, 'system/ExplanationOfBenefit.c');
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await gw2?.stop();
  await stack?.stop();
});

describe('a FHIR client with a SMART token (fhir-kit-client)', () => {
  const client = (): Client =>
    new Client({
      baseUrl: gw2.url,
      bearerToken: token,
      // The test CA: fetch (undici) takes it through a dispatcher.
      requestOptions: { dispatcher: new Agent({ connect: { ca } }) } as never,
    });

  it('creates a resource: 201 with Location, ETag, Last-Modified; billing receives its projection', async () => {
    const before = received.size;
    sent.set(gw2, (sent.get(gw2) ?? 0) + 1);
    const resource = eob();
    const result = await client().create({ resourceType: 'ExplanationOfBenefit', body: resource });
    const { response } = Client.httpFor(result) as { response: Response };
    expect(response.status).toBe(201);
    const location = response.headers.get('location') ?? '';
    expect(location).toMatch(new RegExp(`^${BASE_URL}/ExplanationOfBenefit/[0-9a-f-]{36}/_history/1$`));
    expect(response.headers.get('etag')).toBe('W/"1"');
    expect(Number.isNaN(Date.parse(response.headers.get('last-modified') ?? ''))).toBe(false);
    expect(fhirSchemaErrors(result)).toEqual([]);
    await deliveries(before + 1);
    const id = location.split('/')[4] as string;
    expect(received.get(id)?.id).toBe(resource.id);
    expect(received.get(id)?.meta?.profile).toEqual([stack.catalog.profiles.get('explanationofbenefit-full')?.url]);
  });

  it('posts a batch Bundle: a batch-response entry per resource, each delivered', async () => {
    const before = received.size;
    sent.set(gw2, (sent.get(gw2) ?? 0) + 1);
    const body: Bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [eob(), eob()].map((resource) => ({
        fullUrl: `urn:uuid:${randomUUID()}`,
        resource,
        request: { method: 'POST', url: 'ExplanationOfBenefit' },
      })),
    };
    const result = (await client().batch({ body: body as never })) as unknown as Bundle;
    expect(fhirSchemaErrors(result)).toEqual([]);
    expect(result.type).toBe('batch-response');
    expect(result.entry?.map((e) => e.response?.status)).toEqual(['201 Created', '201 Created']);
    await deliveries(before + 2);
    for (const e of result.entry ?? []) expect(received.has(e.response?.location?.split('/')[4] ?? '')).toBe(true);
  });

  it('posts a transaction Bundle: a transaction-response, each entry delivered', async () => {
    const before = received.size;
    sent.set(gw2, (sent.get(gw2) ?? 0) + 1);
    const body: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [eob(), eob()].map((resource) => ({ resource, request: { method: 'POST', url: 'ExplanationOfBenefit' } })),
    };
    const result = (await client().transaction({ body: body as never })) as unknown as Bundle;
    expect(fhirSchemaErrors(result)).toEqual([]);
    expect(result.type).toBe('transaction-response');
    expect(result.entry?.map((e) => e.response?.status)).toEqual(['201 Created', '201 Created']);
    await deliveries(before + 2);
  });
});

describe('transactions and messages', () => {
  it('a transaction with one invalid entry is refused whole: nothing is published', async () => {
    const before = received.size;
    const r = await fhir(gw2, '/', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: eob(), request: { method: 'POST', url: 'ExplanationOfBenefit' } },
        {
          resource: eob({ status: 'bogus', patient: { reference: 'Patient/pat-inbound-1', display: PLANTED } }),
          request: { method: 'POST', url: 'ExplanationOfBenefit' },
        },
      ],
    });
    expectRefusal(r, 422, 'E_FHIR_INVALID', 'Bundle.entry[1].resource.status');
    await settle();
    expect(received.size).toBe(before + 1);
  });

  it('$process-message: the entries after the MessageHeader are published; a response message names the request', async () => {
    const before = received.size;
    const headerId = randomUUID();
    const r = await fhir(gw2, '/$process-message', {
      resourceType: 'Bundle',
      type: 'message',
      entry: [
        {
          fullUrl: `urn:uuid:${headerId}`,
          resource: {
            resourceType: 'MessageHeader',
            id: headerId,
            eventCoding: { system: 'urn:example:events', code: 'eob-notify', display: PLANTED },
            source: { endpoint: 'https://payer.example.org/fhir' },
          },
        },
        { fullUrl: `urn:uuid:${randomUUID()}`, resource: eob() },
      ],
    });
    expect(r.status, r.text).toBe(200);
    expect(fhirSchemaErrors(r.json)).toEqual([]);
    expect(r.text).not.toContain(PLANTED);
    const bundle = r.json as unknown as Bundle;
    expect(bundle.type).toBe('message');
    expect(bundle.entry?.[0]?.resource).toMatchObject({
      resourceType: 'MessageHeader',
      eventCoding: { system: 'urn:example:events', code: 'eob-notify' },
      response: { identifier: headerId, code: 'ok' },
    });
    expect(bundle.entry?.[1]?.resource?.resourceType).toBe('OperationOutcome');
    await deliveries(before + 1);
  });

  it('a message Bundle whose first entry is not a MessageHeader is refused', async () => {
    const r = await fhir(gw2, '/$process-message', {
      resourceType: 'Bundle',
      type: 'message',
      entry: [{ resource: eob() }],
    });
    expectRefusal(r, 400, 'E_PARTNER_REQUEST', 'Bundle.entry[0].resource');
  });
});

describe('each bad input yields its OperationOutcome and status', () => {
  it('no token, a forged token, a token without the create scope: 401 / 403 with the RFC 6750 challenge', async () => {
    const none = await send(gw2, '/ExplanationOfBenefit', JSON.stringify(eob()), {
      'content-type': 'application/fhir+json',
    });
    expectRefusal(none, 401, 'E_PARTNER_TOKEN', 'Authorization');
    expect(none.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    const [h, p] = token.split('.');
    const forged = await fhir(gw2, '/ExplanationOfBenefit', eob(), { authorization: `Bearer ${h}.${p}.AAAA` });
    expectRefusal(forged, 401, 'E_PARTNER_TOKEN', 'Authorization');
    const readOnly = await accessToken(gw2, 'system/Coverage.rs');
    const r = await fhir(gw2, '/ExplanationOfBenefit', eob(), { authorization: `Bearer ${readOnly}` });
    expectRefusal(r, 403, 'E_PARTNER_SCOPE', 'ExplanationOfBenefit');
    expect(r.headers['www-authenticate']).toBe('Bearer error="insufficient_scope"');
    expectRefusal(await fhir(gw2, '/Patient', { resourceType: 'Patient' }), 403, 'E_PARTNER_SCOPE', 'Patient');
  });

  it('the broker refusals come back with their code, status and element path, never the value', async () => {
    expectRefusal(
      await fhir(gw2, '/ExplanationOfBenefit', eob({ status: 'bogus', insurer: { display: PLANTED } })),
      422,
      'E_FHIR_INVALID',
      'ExplanationOfBenefit.status',
    );
    const unknown = await fhir(gw2, '/ExplanationOfBenefit', eob({ nickname: PLANTED }));
    expectRefusal(unknown, 422, 'E_UNKNOWN_ELEMENT', 'ExplanationOfBenefit.nickname');
    const malformed = await send(
      gw2,
      '/ExplanationOfBenefit',
      `{"resourceType":"ExplanationOfBenefit","x":"${PLANTED}"`,
      {
        'content-type': 'application/fhir+json',
        authorization: `Bearer ${token}`,
      },
    );
    expectRefusal(malformed, 400, 'E_JSON_MALFORMED');
    expectRefusal(
      await fhir(gw2, '/ExplanationOfBenefit', { resourceType: 'Patient', name: [{ text: PLANTED }] }),
      400,
      'E_PARTNER_REQUEST',
      'resourceType',
    );
  });

  it('a batch answers each entry: accepted ones 201, a refused one with its outcome', async () => {
    const before = received.size;
    const r = await fhir(gw2, '/', {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: eob(), request: { method: 'POST', url: 'ExplanationOfBenefit' } },
        { resource: eob({ use: 'sometimes' }), request: { method: 'POST', url: 'ExplanationOfBenefit' } },
        { resource: eob(), request: { method: 'PUT', url: 'ExplanationOfBenefit/1' } },
      ],
    });
    expect(r.status, r.text).toBe(200);
    expect(fhirSchemaErrors(r.json)).toEqual([]);
    const entries = (r.json as unknown as Bundle).entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual([
      '201 Created',
      '422 Unprocessable Entity',
      '400 Bad Request',
    ]);
    expect((entries[1]?.response?.outcome as OperationOutcome).issue[0]).toMatchObject({
      details: { coding: [{ code: 'E_FHIR_INVALID' }] },
      expression: ['Bundle.entry[1].resource.use'],
    });
    expect((entries[2]?.response?.outcome as OperationOutcome).issue[0]?.expression).toEqual([
      'Bundle.entry[2].request.method',
    ]);
    await settle();
    expect(received.size).toBe(before + 2);
  });

  it('a wrong content type is 415, a body over the limit 413', async () => {
    const wrong = await send(gw2, '/ExplanationOfBenefit', 'status=active', {
      'content-type': 'text/plain',
      authorization: `Bearer ${token}`,
    });
    expectRefusal(wrong, 415, 'E_PARTNER_REQUEST', 'Content-Type');
    const big = JSON.stringify(
      eob({ text: { status: 'generated', div: `<div>${'x'.repeat(INBOUND_BODY_LIMIT)}</div>` } }),
    );
    expectRefusal(
      await send(gw2, '/ExplanationOfBenefit', big, {
        'content-type': 'application/fhir+json',
        authorization: `Bearer ${token}`,
      }),
      413,
      'E_TOO_LARGE',
    );
  });
});

describe('idempotency across gateway instances', () => {
  it('the same Bundle.id retried on the second gateway is accepted once and answered the same', async () => {
    const before = received.size;
    const body = {
      resourceType: 'Bundle',
      id: randomUUID(),
      type: 'batch',
      entry: [{ resource: eob(), request: { method: 'POST', url: 'ExplanationOfBenefit' } }],
    };
    const first = await fhir(gw, '/', body);
    expect(first.status, first.text).toBe(200);
    const retry = await fhir(gw2, '/', body);
    expect(retry.status).toBe(first.status);
    expect(retry.json).toEqual(first.json);
    await settle();
    expect(received.size).toBe(before + 2);
    const other = await fhir(gw2, '/', { ...body, entry: [] });
    expectRefusal(other, 422, 'E_PARTNER_IDEMPOTENCY', 'Bundle.id');
  });

  it('an Idempotency-Key on a create: the retry gets the same Location', async () => {
    const resource = eob();
    const headers = { 'idempotency-key': randomUUID() };
    const first = await fhir(gw2, '/ExplanationOfBenefit', resource, headers);
    const retry = await fhir(gw, '/ExplanationOfBenefit', resource, headers);
    expect(first.status).toBe(201);
    expect(retry.status).toBe(201);
    expect(retry.headers['location']).toBe(first.headers['location']);
  });
});

describe('rate limit', () => {
  it('a burst alternating between both gateways: exactly the limit accepted across them, the rest 429, every accepted one delivered', async () => {
    const before = received.size;
    // From an address of its own on loopback: a counter (client and address) no earlier test has spent.
    const answers = await Promise.all(
      Array.from({ length: LIMIT + 10 }, (_, i) =>
        fhir(i % 2 === 0 ? gw : gw2, '/ExplanationOfBenefit', eob(), {}, BURST_ADDRESS),
      ),
    );
    const accepted = answers.filter((a) => a.status === 201);
    const limited = answers.filter((a) => a.status === 429);
    expect(accepted.length).toBe(LIMIT);
    expect(limited.length).toBe(10);
    for (const l of limited) {
      expectRefusal(l, 429, 'E_RATE_LIMITED');
      expect(Number(l.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(l.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    await deliveries(before + accepted.length);
    for (const a of accepted) expect(received.has(String(a.headers['location']).split('/')[4] ?? '')).toBe(true);
    await settle();
    expect(received.size).toBe(before + accepted.length + 1);
  });

  it('a counter keeps one fixed window per key: past the limit nothing more is written; a new window starts fresh', async () => {
    const nc = await stack.connectAs(GATEWAY_IDENTITY, 'inbound-rate-counter');
    let clock = 1_000_000;
    try {
      const kv = await ensureGatewayRateBucket(nc);
      const counter = new RateCounter(kv, () => clock, stack.logger);
      const key = rateKey('partner-payer', `fd00::${randomUUID().slice(0, 4)}`); // a fresh key, `:` and all
      expect(key).toMatch(/^client\.partner-payer\.[A-Za-z0-9_-]{43}$/);
      expect(rateKeyClient(key)).toBe('partner-payer');
      expect(rateKeyClient(rateKey(undefined, '127.0.0.1'))).toBeUndefined();
      const counts = [];
      const revisions = [];
      for (let i = 0; i < 4; i++) {
        counts.push(await counter.count(key, 10_000, 2));
        revisions.push((await kv.get(key))?.revision ?? 0);
        clock += 1_000;
      }
      expect(counts).toEqual([
        { current: 1, ttl: 10_000 },
        { current: 2, ttl: 9_000 },
        { current: 3, ttl: 8_000 },
        { current: 3, ttl: 7_000 },
      ]);
      // Written by the first three (the third crossed the limit); the fourth only read.
      expect(revisions[0]).toBeGreaterThan(0);
      expect(revisions[1]).toBeGreaterThan(revisions[0] ?? 0);
      expect(revisions[2]).toBeGreaterThan(revisions[1] ?? 0);
      expect(revisions[3]).toBe(revisions[2]);
      expect(JSON.parse((await kv.get(key))?.string() ?? '{}')).toEqual({ v: 1, start: 1_000_000, count: 3 });
      clock = 1_000_000 + 10_000;
      expect(await counter.count(key, 10_000, 2)).toEqual({ current: 1, ttl: 10_000 });
    } finally {
      await nc.close();
    }
  });

  it('without its counters a gateway fails closed: 503 with Retry-After and E_RATE_LIMIT_UNAVAILABLE, nothing published', async () => {
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'inbound-rate-admin');
    const jsm = await admin.jetstreamManager();
    await jsm.streams.delete(jsApi.kvStream(KV_BUCKETS.gatewayRate));
    const before = received.size;
    try {
      // One gateway's FHIR route, the other's token endpoint.
      const r = await fhir(gw, '/ExplanationOfBenefit', eob());
      expectRefusal(r, 503, 'E_RATE_LIMIT_UNAVAILABLE');
      expect(r.headers['retry-after']).toBe('1');
      const t = await send(
        gw2,
        '/auth/token',
        'grant_type=client_credentials',
        {
          'content-type': 'application/x-www-form-urlencoded',
        },
        false,
      );
      expect([t.status, t.json['error'], t.headers['retry-after']]).toEqual([503, 'E_RATE_LIMIT_UNAVAILABLE', '1']);
      const again = await send(
        gw2,
        '/auth/token',
        'grant_type=client_credentials',
        { 'content-type': 'application/x-www-form-urlencoded' },
        false,
      );
      expect(again.status).toBe(503);
      // The token endpoint's first refusal of the window is an AuditEvent before the answer; the second is counted
      // into the window's summary (recorded at its end), not recorded on its own.
      const refused = (await gatewayAuditEvents(stack, 'gw-inbound-2')).filter(
        (e) => e.subtype?.[0]?.code === '110122' && e.outcomeDesc?.startsWith('E_RATE_LIMIT_UNAVAILABLE') === true,
      );
      expect(refused.map((e) => [e.outcome, e.outcomeDesc, e.agent[0]?.who?.display])).toEqual([
        ['4', 'E_RATE_LIMIT_UNAVAILABLE', 'unauthenticated client'],
      ]);
      expect(refused.flatMap((e) => [...fhirSchemaErrors(e), ...balpProblems(e)])).toEqual([]);
    } finally {
      await ensureGatewayRateBucket(admin);
      await admin.close();
    }
    await settle();
    expect(received.size).toBe(before + 1);
    expect(stack.logs.text()).toContain('gateway.rate.unavailable');
  });
});

describe('phi-broker partner token', () => {
  it("signs with the partner's key, prints a token the gateway takes; an unregistered key is refused", async () => {
    // A gateway on its default base URL (https://localhost:<port>), as `phi-broker gateway` runs by hand.
    const local = await startTestGateway(stack, 3, 'gw-inbound-3');
    try {
      const dir = mkdtempSync(join(tmpdir(), 'phi-partner-key-'));
      const file = join(dir, 'payer.private.jwk.json');
      writeFileSync(file, JSON.stringify({ ...(await exportJWK(key)), kid: 'payer-test', alg: 'ES384' }), {
        mode: 0o600,
      });
      const out = new PassThrough();
      await runPartnerToken(stack.config, { as: 'partner-payer', key: file, url: local.baseUrl }, out);
      const printed = String(out.read()).trim();
      expect(printed).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      const created = await send(local, '/ExplanationOfBenefit', JSON.stringify(eob()), {
        'content-type': 'application/fhir+json',
        authorization: `Bearer ${printed}`,
      });
      expect(created.status, created.text).toBe(201);
      const other = join(dir, 'other.private.jwk.json');
      const { privateKey } = await generateKeyPair('ES384', { extractable: true });
      writeFileSync(other, JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'payer-test', alg: 'ES384' }));
      await expect(
        runPartnerToken(stack.config, { as: 'partner-payer', key: other, url: local.baseUrl }, new PassThrough()),
      ).rejects.toMatchObject({ code: 'E_PARTNER_AUTH' });
      await expect(
        runPartnerToken(stack.config, { as: 'billing', key: file, url: local.baseUrl }, new PassThrough()),
      ).rejects.toMatchObject({ code: 'E_USAGE', path: '--as' });
    } finally {
      await local.stop();
    }
  });
});

describe('audit and logs', () => {
  it('every request to a gateway is an AuditEvent with the partner as agent; nothing planted in any log', async () => {
    const nc = await stack.connect('inbound-auditor');
    const events = new Map<string, AuditEvent[]>();
    for await (const rec of readAuditRecords(nc)) {
      const record = decodeRecord(rec.data);
      if (record === undefined) continue;
      const list = events.get(record.chain) ?? [];
      list.push(
        ...(record.events ?? []).filter((e) => e.subtype?.[0]?.system === 'http://hl7.org/fhir/restful-interaction'),
      );
      events.set(record.chain, list);
    }
    await nc.close();
    expect(events.get(gatewayChain('gw-inbound-1'))?.length).toBe(sent.get(gw));
    expect(events.get(gatewayChain('gw-inbound-2'))?.length).toBe(sent.get(gw2));
    const all = [...events.values()].flat();
    for (const e of all) expect(fhirSchemaErrors(e)).toEqual([]);
    // IHE BALP rules (test/helpers/balp.ts), as for every other kind in test/audit/balp.int.test.ts.
    expect(all.flatMap((e) => balpProblems(e).map((m) => `${e.id ?? ''}: ${m}`))).toEqual([]);
    const authenticated = all.filter((e) => e.agent.some((a) => a.who?.identifier?.value === 'partner-payer'));
    expect(authenticated.length).toBe(all.length - 2); // the two refused tokens name no partner
    expect(JSON.stringify(all)).not.toContain(PLANTED);
    expect(stack.logs.text()).not.toContain(PLANTED);
  });
});
