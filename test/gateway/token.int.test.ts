// The partner gateway's token endpoint (SMART Backend Services) against a real nats-server (mTLS, provisioned as
// deployed) and two real HTTPS gateways on loopback ports: every edge case of the client assertion is refused with
// its OAuth error, code and field path; a jti is usable once across both gateways, and the rate limit counts across
// both; a granted token verifies against the gateway's JWKS with jose; every request is an AuditEvent in the
// gateway's chain; /metadata and every OperationOutcome validate against the FHIR R4 JSON schema.
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SignJWT,
  createLocalJWKSet,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type CryptoKey,
  type JWK,
} from 'jose';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { balpProblems } from '../helpers/balp.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { gatewayAuditEvents, startTestGateway } from '../helpers/gateway.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';
import { ensureOperatorRootKey, publishDirectory, pruneParties } from '../../src/runtime/key-directory.js';
import { readTokenKeys, tokenKeyFile } from '../../src/gateway/token-signer.js';
import { keyFileStore, PLAIN_KEYS } from '../../src/runtime/key-protection.js';
import { GATEWAY_AUDIT_ID } from '../../src/wire/ids.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';
import { STREAMS } from '../../src/wire/names.js';
import { NOT_BUILT, runCli } from '../cli/run-cli.js';

interface Client {
  readonly clientId: string;
  readonly kid: string;
  readonly alg: 'ES384' | 'RS384';
  readonly key: CryptoKey;
}

const BASE_URL = 'https://partners.example.test';
let stack: TestStack;
let gw: Gateway;
let gw2: Gateway;
let ca: string;
let payer: Client;
let health: Client;

/** The shipped catalog with each partner's placeholder key replaced by a key this test holds. */
async function partnerCatalog(): Promise<{ subjects: string; payer: Client; health: Client }> {
  const dir = mkdtempSync(join(tmpdir(), 'phi-gateway-catalog-'));
  cpSync(join(ROOT, 'subjects'), dir, { recursive: true });
  const file = join(dir, 'services.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const clients: Client[] = [];
  for (const [id, alg] of [
    ['partner-payer', 'ES384'],
    ['public-health', 'RS384'],
  ] as const) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid: `${id}-test`, alg };
    const services = doc.get('services') as {
      items: { get(k: string): unknown; setIn(p: unknown[], v: unknown): void }[];
    };
    const service = services.items.find((s) => s.get('id') === id);
    service?.setIn(['partner', 'jwks', 'keys'], doc.createNode([jwk]));
    clients.push({ clientId: id, kid: `${id}-test`, alg, key: privateKey });
  }
  writeFileSync(file, doc.toString());
  return { subjects: dir, payer: clients[0] as Client, health: clients[1] as Client };
}

function post(url: string, form: Record<string, string | string[]>, contentType = 'application/x-www-form-urlencoded') {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
  return send(url, 'POST', body.toString(), contentType);
}

function send(
  url: string,
  method: string,
  body?: string,
  contentType?: string,
): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, ca, headers: contentType === undefined ? {} : { 'content-type': contentType } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A client assertion as SMART Backend Services describes it, with any claim or header overridden. */
async function assertion(
  client: Client,
  aud: string,
  over: { claims?: Record<string, unknown>; header?: Record<string, unknown>; expIn?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID(), ...over.claims })
    .setProtectedHeader({ alg: client.alg, kid: client.kid, typ: 'JWT', ...over.header })
    .setIssuer((over.claims?.['iss'] as string | undefined) ?? client.clientId)
    .setSubject((over.claims?.['sub'] as string | undefined) ?? client.clientId)
    .setAudience((over.claims?.['aud'] as string | undefined) ?? aud)
    .setExpirationTime(now + (over.expIn ?? 240))
    .sign(client.key);
}

const tokenUrl = (g: Gateway): string => `${g.baseUrl}/auth/token`;
const form = (a: string, scope = 'system/Coverage.rs'): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: a,
  scope,
});

/** Sends to the gateway's listening address the request whose assertion names its public token URL. */
let sent = 0;
const token = async (g: Gateway, f: Record<string, string | string[]>) => {
  const r = await post(`${g.url}/auth/token`, f);
  sent += 1; // every form request is audited: on its own, or counted in a rate-limit summary
  return r;
};

beforeAll(async () => {
  const catalog = await partnerCatalog();
  payer = catalog.payer;
  health = catalog.health;
  stack = await startTestStack({ broker: false, config: { subjectsDir: catalog.subjects, gatewayPort: 0 } });
  const tls = stack.nats.tls;
  if (tls === undefined) throw new Error('expected an mTLS stack');
  ca = readFileSync(tls.ca.certFile, 'utf8');
  const start = async (n: number): Promise<Gateway> =>
    // One public base URL for both, as behind a load balancer: an assertion is for either gateway.
    startTestGateway(stack, n, `gw-test-${n}`, { config: { ...stack.config, gatewayBaseUrl: BASE_URL } });
  gw = await start(1);
  gw2 = await start(2);
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await gw2?.stop();
  await stack?.stop();
});

function expectRefused(
  r: { status: number; json: Record<string, unknown> },
  status: number,
  error: string,
  description: string,
): void {
  expect({ status: r.status, error: r.json['error'], description: r.json['error_description'] }).toEqual({
    status,
    error,
    description,
  });
}

describe('token endpoint: the client assertion checks of SMART Backend Services', () => {
  it('grants a token of at most five minutes that verifies against the gateway JWKS, with exactly the scopes asked', async () => {
    const r = await token(
      gw,
      form(await assertion(payer, tokenUrl(gw)), 'system/Coverage.r system/ExplanationOfBenefit.c'),
    );
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.json).toMatchObject({
      token_type: 'bearer',
      expires_in: 300,
      scope: 'system/Coverage.r system/ExplanationOfBenefit.c',
    });
    const jwks = await send(`${gw2.url}/.well-known/jwks.json`, 'GET');
    const { payload, protectedHeader } = await jwtVerify(
      r.json['access_token'] as string,
      createLocalJWKSet(jwks.json as { keys: JWK[] }),
      { issuer: gw.baseUrl, audience: gw.baseUrl, algorithms: ['ES384'] },
    );
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload.sub).toBe('partner-payer');
    expect(payload.scope).toBe('system/Coverage.r system/ExplanationOfBenefit.c');
    expect((payload.exp as number) - (payload.iat as number)).toBeLessThanOrEqual(300);
    // An RS384 partner too.
    const h = await token(gw2, form(await assertion(health, tokenUrl(gw2)), 'system/Immunization.rs'));
    expect(h.status).toBe(200);
  });

  it('refuses each broken assertion with invalid_client, naming the claim', async () => {
    const aud = tokenUrl(gw);
    const cases: [string, Promise<string>, string][] = [
      [
        'wrong aud',
        assertion(payer, 'https://elsewhere.example/auth/token'),
        'client_assertion.aud: not the URL of this token endpoint',
      ],
      ['expired', assertion(payer, aud, { expIn: -600 }), 'client_assertion.exp: expired'],
      [
        'exp too far',
        assertion(payer, aud, { expIn: 30 * 60 }),
        'client_assertion.exp: more than five minutes in the future',
      ],
      [
        'unknown kid',
        assertion(payer, aud, { header: { kid: 'nobody' } }),
        "client_assertion.header.kid: not a key id of this client's registered keys",
      ],
      // public-health's kid, signed by payer's key and naming payer: a kid is looked up in the client's own keys only.
      [
        'another client kid',
        assertion(payer, aud, { header: { kid: health.kid } }),
        "client_assertion.header.kid: not a key id of this client's registered keys",
      ],
      [
        'sub not iss',
        assertion(payer, aud, { claims: { sub: 'public-health' } }),
        'client_assertion.sub: expected the client id',
      ],
      // Another partner's client id with this partner's key: the signature does not verify with public-health's key.
      [
        'other client_id',
        assertion(payer, aud, { claims: { iss: 'public-health', sub: 'public-health' }, header: { kid: health.kid } }),
        'client_assertion: the signature does not verify with the registered key',
      ],
      ['no jti', assertion(payer, aud, { claims: { jti: undefined } }), 'client_assertion.jti: missing'],
    ];
    for (const [name, a, description] of cases) {
      const r = await token(gw, form(await a));
      expect({ name, ...r.json }).toEqual({
        name,
        error: 'invalid_client',
        error_description: `E_PARTNER_AUTH at ${description}`,
      });
      expect(r.status).toBe(401);
    }
    // client_id naming another partner than the assertion's iss.
    const mismatch = await token(gw, { ...form(await assertion(payer, aud)), client_id: 'public-health' });
    expectRefused(
      mismatch,
      401,
      'invalid_client',
      'E_PARTNER_AUTH at client_id: names another client than the assertion',
    );
  });

  it('refuses HS256 and alg none, whatever the key', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: 'partner-payer', sub: 'partner-payer', aud: tokenUrl(gw), exp: now + 60, jti: randomUUID() };
    const hs = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: payer.kid })
      .sign(new TextEncoder().encode('x'.repeat(32)));
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none', kid: payer.kid })}.${b64(claims)}.`;
    for (const a of [hs, none]) {
      expectRefused(
        await token(gw, form(a)),
        401,
        'invalid_client',
        'E_PARTNER_AUTH at client_assertion.header.alg: algorithm not allowed: expected one of RS384, ES384, EdDSA',
      );
    }
  });

  it('uses a jti once across gateway instances', async () => {
    const a = await assertion(payer, tokenUrl(gw));
    expect((await token(gw, form(a))).status).toBe(200);
    expectRefused(
      await token(gw, form(a)),
      401,
      'invalid_client',
      'E_PARTNER_AUTH at client_assertion.jti: already used',
    );
    // A jti spent on the second gateway fails on the first.
    const a2 = await assertion(payer, tokenUrl(gw2));
    expect((await token(gw2, form(a2))).status).toBe(200);
    expectRefused(
      await token(gw, form(a2)),
      401,
      'invalid_client',
      'E_PARTNER_AUTH at client_assertion.jti: already used',
    );
  });

  it('refuses a scope wider than registered, and malformed requests', async () => {
    const wider = await token(gw, form(await assertion(payer, tokenUrl(gw)), 'system/Coverage.rs system/Patient.rs'));
    expectRefused(
      wider,
      400,
      'invalid_scope',
      'E_PARTNER_SCOPE at scope: system/Patient.rs is not registered for this client',
    );
    const write = await token(gw, form(await assertion(payer, tokenUrl(gw)), 'system/Coverage.c'));
    expectRefused(
      write,
      400,
      'invalid_scope',
      'E_PARTNER_SCOPE at scope: system/Coverage.c is not registered for this client',
    );
    const grant = await token(gw, { ...form(await assertion(payer, tokenUrl(gw))), grant_type: 'password' });
    expectRefused(grant, 400, 'unsupported_grant_type', 'E_PARTNER_REQUEST at grant_type: expected client_credentials');
    const twice = await token(gw, { ...form('a'), scope: ['system/Coverage.r', 'system/Claim.r'] });
    expectRefused(twice, 400, 'invalid_request', 'E_PARTNER_REQUEST at scope: repeated (each parameter once)');
    const json = await send(`${gw.url}/auth/token`, 'POST', JSON.stringify(form('a')), 'application/json');
    sent += 1; // refused for its body, audited all the same
    expectRefused(
      json,
      400,
      'invalid_request',
      'E_PARTNER_REQUEST at body: expected application/x-www-form-urlencoded',
    );
    // Larger than a token request can be (16 KiB): refused by the body parser before the handler, audited too.
    const huge = await send(
      `${gw.url}/auth/token`,
      'POST',
      `grant_type=client_credentials&scope=${'x'.repeat(20_000)}`,
      'application/x-www-form-urlencoded',
    );
    sent += 1;
    expect(huge.status).toBe(413);
    expect(huge.json['error']).toBe('invalid_request');
  });
});

describe('discovery and FHIR answers', () => {
  it('serves the SMART configuration and a CapabilityStatement that validates as FHIR R4', async () => {
    const smart = await send(`${gw.url}/.well-known/smart-configuration`, 'GET');
    expect(smart.json).toMatchObject({
      token_endpoint: tokenUrl(gw),
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384', 'EdDSA'],
    });
    expect(smart.headers['strict-transport-security']).toBeDefined();
    const meta = await send(`${gw.url}/metadata`, 'GET');
    expect(meta.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(fhirSchemaErrors(meta.json)).toEqual([]);
    const rest = (
      meta.json['rest'] as {
        resource: { type: string; supportedProfile?: string[]; interaction?: unknown }[];
        interaction?: unknown;
        operation?: unknown;
      }[]
    )[0];
    expect(rest?.resource.map((r) => r.type)).toEqual([
      'Claim',
      'Coverage',
      'ExplanationOfBenefit',
      'Immunization',
      'Patient',
      'Subscription',
      'StructureDefinition',
    ]);
    // create exactly where a partner's scopes say c (partner-payer: system/ExplanationOfBenefit.c), read where a
    // partner receives the type and its scopes say r (GET /[type]/[id]), the Subscription interactions and the read
    // of the profiles; and the whole-system writes of inbound.ts.
    expect(rest?.resource.filter((r) => r.interaction !== undefined).map((r) => r.type)).toEqual([
      'Claim',
      'Coverage',
      'ExplanationOfBenefit',
      'Immunization',
      'Patient',
      'Subscription',
      'StructureDefinition',
    ]);
    expect(rest?.resource.find((r) => r.type === 'ExplanationOfBenefit')?.interaction).toEqual([{ code: 'create' }]);
    for (const type of ['Claim', 'Coverage', 'Immunization', 'Patient'])
      expect(rest?.resource.find((r) => r.type === type)?.interaction, type).toEqual([{ code: 'read' }]);
    expect(rest?.interaction).toEqual([{ code: 'transaction' }, { code: 'batch' }]);
    expect(rest?.operation).toEqual([
      { name: 'process-message', definition: 'http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message' },
    ]);
    expect(rest?.resource.find((r) => r.type === 'Coverage')?.supportedProfile).toEqual([
      stack.catalog.profiles.get('coverage-payer')?.url,
    ]);
    // Each listed profile is readable as a StructureDefinition; other ids are not.
    const sd = await send(`${gw.url}/StructureDefinition/coverage-payer`, 'GET');
    expect(sd.status).toBe(200);
    expect(fhirSchemaErrors(sd.json)).toEqual([]);
    expect(sd.json).toMatchObject({ url: stack.catalog.profiles.get('coverage-payer')?.url, derivation: 'constraint' });
    const internal = await send(`${gw.url}/StructureDefinition/patient-full`, 'GET');
    expect(internal.status).toBe(404);
    expect(fhirSchemaErrors(internal.json)).toEqual([]);
    const missing = await send(`${gw.url}/Patient/123/_history/1`, 'GET');
    expect(missing.status).toBe(404);
    expect(fhirSchemaErrors(missing.json)).toEqual([]);
    expect(missing.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'not-supported' }] });
    // A read (GET /[type]/[id]) needs a bearer token before anything else is said.
    const read = await send(`${gw.url}/Patient/123`, 'GET');
    expect(read.status).toBe(401);
    expect(fhirSchemaErrors(read.json)).toEqual([]);
    expect(read.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'login' }] });
  });
});

describe('rate limit', () => {
  it('answers 429 with Retry-After once a client exceeds its catalog limit, counted per client and address', async () => {
    // public-health has the default limit (60 per 60 s) and used two requests above, one on each gateway: both
    // count against one budget, so the 59th here is its 61st.
    let limited: Awaited<ReturnType<typeof token>> | undefined;
    let tries = 0;
    while (limited === undefined && tries < 80) {
      tries += 1;
      const r = await token(gw, form(await assertion(health, 'https://elsewhere.example/auth/token')));
      if (r.status === 429) limited = r;
      else expect(r.status).toBe(401);
    }
    expect(tries).toBe(59);
    const retryAfter = Number(limited?.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited?.json['error']).toBe('E_RATE_LIMITED');
    // More refusals in the window: 3 on this gateway, 2 on the other (each gateway summarises its own; the audit
    // test below counts them). The other's come while PHI_AUDIT refuses every new record (a message size limit below
    // any record, set by the admin): its first refusal cannot be recorded, so it is logged and counted instead.
    const refuse = async (g: Gateway) =>
      expect((await token(g, form(await assertion(health, 'https://elsewhere.example/auth/token')))).status).toBe(429);
    for (let i = 0; i < 3; i += 1) await refuse(gw);
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'token-audit-admin');
    const jsm = await admin.jetstreamManager();
    const { config } = await jsm.streams.info(STREAMS.audit);
    await jsm.streams.update(STREAMS.audit, { ...config, max_msg_size: 16 });
    try {
      await refuse(gw2);
      await refuse(gw2);
    } finally {
      await jsm.streams.update(STREAMS.audit, config);
      await admin.close();
    }
    expect(stack.logs.text()).toContain('gateway.audit.unrecorded');
    // Another partner's budget is its own.
    expect((await token(gw, form(await assertion(payer, tokenUrl(gw))))).status).toBe(200);
  });
});

/** Re-reads `read()` until `done` holds: the gateway applies a directory entry when its watch delivers it. */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  let last = await read();
  for (let i = 0; i < 100 && !done(last); i += 1) {
    await new Promise((r) => setTimeout(r, 50));
    last = await read();
  }
  return last;
}

describe.skipIf(NOT_BUILT !== undefined)('key directory: JWKS and partner keys follow it without a restart', () => {
  let gwDir: Gateway;
  const cli = (...args: string[]): ReturnType<typeof runCli> =>
    runCli([...args, '--subjects', stack.config.subjectsDir, '--data-dir', stack.config.dataDir], { env: stack.env });
  const jwksOf = async (g: Gateway): Promise<JWK[]> =>
    ((await send(`${g.url}/.well-known/jwks.json`, 'GET')).json as { keys: JWK[] }).keys;
  const kids = (keys: readonly JWK[]): string[] => keys.map((k) => k.kid as string).sort();
  // Requests to this gateway are audited in its own chain (gw-dir-1), not counted by the audit test below.
  const tokenDir = (a: string) => post(`${gwDir.url}/auth/token`, form(a));
  /** A bearer-token request for a Subscription no one has: 404 once authenticated, 401 when the token is refused. */
  const bearerGet = (g: Gateway, accessToken: string) =>
    new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const req = request(
        `${g.url}/Subscription/no-such-subscription`,
        { ca, headers: { authorization: `Bearer ${accessToken}` } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    const { root } = await ensureOperatorRootKey(stack.keysDir);
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'provision-keys');
    await publishDirectory(admin, stack.catalog, stack.keysDir, root, { create: true });
    await admin.close();
    gwDir = await startTestGateway(stack, 3, 'gw-dir-1', {
      config: { ...stack.config, gatewayBaseUrl: BASE_URL },
      keyDirectory: { root },
    });
  }, 60_000);

  let stopped = false;
  afterAll(async () => {
    if (!stopped) await gwDir?.stop();
  });

  it('lists the token key and the broker and gateway keys; a rotation shows, a revoked key goes; all import with jose', async () => {
    const before = await jwksOf(gwDir);
    const token = before.find((k) => k.kty === 'EC');
    expect(token).toMatchObject({ crv: 'P-384', alg: 'ES384', use: 'sig' });
    expect(kids(before)).toEqual([token?.kid, 'broker:enc:1', 'broker:sig:1', 'gateway:sig:1'].sort());

    const rotated = await cli('keys', 'rotate', '--broker', '--overlap', '1h');
    expect(rotated.stderr).toBe('');
    expect(rotated.code).toBe(0);
    const after = await until(
      () => jwksOf(gwDir),
      (keys) => kids(keys).includes('broker:sig:2'),
    );
    expect(kids(after)).toEqual(
      [token?.kid, 'broker:enc:1', 'broker:enc:2', 'broker:sig:1', 'broker:sig:2', 'gateway:sig:1'].sort(),
    );
    // A gateway without the directory still serves what it started with.
    expect(kids(await jwksOf(gw))).not.toContain('broker:sig:2');

    expect((await cli('keys', 'revoke', '--kid', 'broker:sig:1', '--reason', 'drill')).code).toBe(0);
    const oldToken = (await tokenDir(await assertion(payer, tokenUrl(gwDir)))).json['access_token'] as string;
    expect(decodeProtectedHeader(oldToken).kid).toBe(token?.kid);
    const gateway = await cli('keys', 'rotate', '--gateway', '--overlap', '1h');
    expect(gateway.stdout).toMatch(
      /^rotated gateway: current gateway:sig:2 and gateway:enc:2;.*\nrotated gateway token key: current \S+\n$/,
    );
    const newTokenKid = /token key: current (\S+)/.exec(gateway.stdout)?.[1];
    // This gateway is given no reload: it cannot load gateway:sig:2 and says so (its checkpoints: the last test here).
    await stack.logs.until(
      (l) => l['event'] === 'keys.own.missing' && l['gateway'] === 3 && l['kid'] === 'gateway:sig:2',
      'the gateway to miss gateway:sig:2',
    );
    const last = await until(
      () => jwksOf(gwDir),
      (keys) => !kids(keys).includes('broker:sig:1') && kids(keys).includes('gateway:sig:2'),
    );
    expect(kids(last)).toEqual(
      [
        token?.kid,
        newTokenKid,
        'broker:enc:1',
        'broker:enc:2',
        'broker:sig:2',
        'gateway:sig:1',
        'gateway:sig:2',
      ].sort(),
    );
    for (const k of last) {
      expect(Object.keys(k).sort()).toEqual(
        k.kty === 'EC'
          ? ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']
          : k.use === 'sig'
            ? ['alg', 'crv', 'kid', 'kty', 'use', 'x']
            : ['crv', 'kid', 'kty', 'use', 'x'],
      );
      await expect(importJWK(k, k.alg ?? 'ECDH-ES')).resolves.toBeDefined();
    }
    // New tokens are signed with the new token key; one signed with the previous key stays valid in the overlap.
    const newToken = (await tokenDir(await assertion(payer, tokenUrl(gwDir)))).json['access_token'] as string;
    expect(decodeProtectedHeader(newToken).kid).toBe(newTokenKid);
    expect((await bearerGet(gwDir, oldToken)).status).toBe(404);
    // Revoking it refuses the token at once (401, coded), and the JWKS drops the key.
    expect((await cli('keys', 'revoke', '--kid', token?.kid as string, '--reason', 'drill')).code).toBe(0);
    const refused = await until(
      () => bearerGet(gwDir, oldToken),
      (r) => r.status !== 404,
    );
    expect(refused.status).toBe(401);
    expect(JSON.stringify(refused.json)).toContain('E_PARTNER_AUTH');
    expect((await bearerGet(gwDir, newToken)).status).toBe(404);
    expect(kids(await jwksOf(gwDir))).not.toContain(token?.kid);
    const listed = JSON.parse((await cli('keys', 'list', '--json')).stdout) as Record<string, string>[];
    expect(listed.filter((r) => r['party'] === 'gateway').map((r) => [r['kind'], r['kid'], r['status']])).toEqual([
      ['gateway', 'gateway:sig:1', 'retiring'],
      ['gateway', 'gateway:enc:1', 'retiring'],
      ['gateway', 'gateway:sig:2', 'active'],
      ['gateway', 'gateway:enc:2', 'active'],
      ['gateway', token?.kid, 'revoked'],
      ['gateway', newTokenKid, 'active'],
    ]);
  });

  it('keys prune --gateway deletes a revoked token key from the token key file and the directory; the newest keeps signing', async () => {
    const file = tokenKeyFile(stack.keysDir);
    const held = async (): Promise<string[]> =>
      (await readTokenKeys(file, keyFileStore(PLAIN_KEYS))).map((k) => k.publicJwk.kid as string);
    const tokenRows = async (): Promise<Record<string, string>[]> =>
      (JSON.parse((await cli('keys', 'list', '--json')).stdout) as Record<string, string>[]).filter(
        (r) => r['party'] === 'gateway' && !(r['kid'] ?? '').startsWith('gateway:'),
      );
    const before = await tokenRows();
    const revoked = before.find((r) => r['status'] === 'revoked')?.['kid'] as string;
    const active = before.find((r) => r['status'] === 'active')?.['kid'] as string;
    expect(await held()).toEqual([active, revoked]);
    const { root } = await ensureOperatorRootKey(stack.keysDir);
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'prune-keys');
    // A clock a minute on: the revoked key stopped verifying more than `olderThanMs` before (tokens live 5 min at most).
    const destroyed = await pruneParties(admin, stack.keysDir, root, [GATEWAY_AUDIT_ID], {
      olderThanMs: 1_000,
      retentionMs: 0,
      nowMs: Date.now() + 60_000,
    }).finally(() => admin.close());
    // The audit keys are retiring for an hour: only the token key goes.
    expect([...destroyed]).toEqual([[GATEWAY_AUDIT_ID, [revoked]]]);
    expect(await held()).toEqual([active]);
    const after = await tokenRows();
    expect(after.map((r) => [r['kid'], r['status'], typeof r['destroyedAt'], r['reason']])).toEqual([
      [revoked, 'retired', 'string', 'drill'],
      [active, 'active', 'undefined', undefined],
    ]);
    // The running gateway applies the entry: still unlisted, and new tokens are signed with the newest key.
    expect(kids(await jwksOf(gwDir))).not.toContain(revoked);
    const issued = (await tokenDir(await assertion(payer, tokenUrl(gwDir)))).json['access_token'] as string;
    expect(decodeProtectedHeader(issued).kid).toBe(active);
    // Nothing left to prune: the newest key is never deleted, whatever the directory says of it.
    const again = await cli('keys', 'prune', '--gateway', '--older-than', '1s', '--force');
    expect(again.stdout).toBe('no key version retired long enough ago\n');
  });

  it("uses a partner's directory keys: published, then revoked and refused at the next request (invalid_client, audited)", async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
    const dirKey: Client = { clientId: 'partner-payer', kid: 'payer-dir-1', alg: 'ES384', key: privateKey };
    const file = join(mkdtempSync(join(tmpdir(), 'phi-partner-jwks-')), 'jwks.json');
    writeFileSync(
      file,
      JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'payer-dir-1', alg: 'ES384' }] }),
    );
    // Unknown to the catalog: refused until the directory has it.
    expect((await tokenDir(await assertion(dirKey, tokenUrl(gwDir)))).json['error_description']).toBe(
      "E_PARTNER_AUTH at client_assertion.header.kid: not a key id of this client's registered keys",
    );
    const published = await cli('keys', 'publish', '--partner', 'partner-payer', '--jwks', file);
    expect(published.stdout).toBe('published partner-payer: payer-dir-1\n');
    const granted = await until(
      async () => tokenDir(await assertion(dirKey, tokenUrl(gwDir))),
      (r) => r.status === 200,
    );
    expect(granted.status).toBe(200);
    // The catalog's inline key, which the directory does not list, stays the bootstrap.
    expect((await tokenDir(await assertion(payer, tokenUrl(gwDir)))).status).toBe(200);
    expect(kids(await jwksOf(gwDir))).not.toContain('payer-dir-1');

    const revoked = await cli('keys', 'revoke', '--kid', 'payer-dir-1', '--reason', 'key leaked');
    expect(revoked.stdout).toMatch(/^revoked payer-dir-1 at \d{4}-/);
    const refused = await until(
      async () => tokenDir(await assertion(dirKey, tokenUrl(gwDir))),
      (r) => r.status !== 200,
    );
    expectRefused(
      refused,
      401,
      'invalid_client',
      "E_PARTNER_AUTH at client_assertion.header.kid: not a key id of this client's registered keys",
    );
    const rows = JSON.parse((await cli('keys', 'list', '--json')).stdout) as Record<string, string>[];
    expect(rows.find((r) => r['kid'] === 'payer-dir-1')).toMatchObject({
      party: 'partner-payer',
      kind: 'partner',
      use: 'sig',
      status: 'revoked',
      reason: 'key leaked',
    });
    const refusals = (await gatewayAuditEvents(stack, 'gw-dir-1')).filter(
      (e) => e.outcomeDesc === 'E_PARTNER_AUTH at client_assertion.header.kid',
    );
    // The refusal before publishing and the one after revoking (at least: the wait may have sent more).
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    for (const e of refusals) expect(fhirSchemaErrors(e)).toEqual([]);
  });

  it('a gateway that cannot load the new audit key signs its chain with the previous one through the overlap', async () => {
    await gwDir.stop(); // the final checkpoint seals the chain
    stopped = true;
    const nc = await stack.connect('checkpoint-reader');
    const checkpoints: { kid: string; final: boolean }[] = [];
    for await (const r of readAuditRecords(nc)) {
      const cp = decodeRecord(r.data);
      if (cp?.chain === gwDir.chain && cp.checkpoint !== undefined)
        checkpoints.push({ kid: cp.checkpoint.kid, final: cp.checkpoint.final === true });
    }
    await nc.close();
    // The sealing checkpoint, written after the rotation, too.
    expect(checkpoints.at(-1)).toEqual({ kid: 'gateway:sig:1', final: true });
    expect(new Set(checkpoints.map((c) => c.kid))).toEqual(new Set(['gateway:sig:1']));
  });

  it('refuses a malformed partner JWK Set with E_CONFIG_INVALID naming the member, and a non-partner with E_USAGE', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'phi-partner-jwks-')), 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-384', x: 'a', y: 'b', d: 'c', kid: 'k' }] }));
    const bad = await cli('keys', 'publish', '--partner', 'partner-payer', '--jwks', file);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(`E_CONFIG_INVALID: ${file}: keys[0].d: not a member of a public EC signing key`);
    const notPartner = await cli('keys', 'publish', '--partner', 'billing', '--jwks', file);
    expect(notPartner.code).not.toBe(0);
    expect(notPartner.stderr).toContain('E_USAGE: --partner: billing is not a partner in the catalog');
  });
});

describe('audit', () => {
  it('records every token request, granted or refused, as a FHIR R4 AuditEvent in the gateway chains', async () => {
    await gw.stop();
    await gw2.stop();
    const events = await gatewayAuditEvents(stack, 'gw-test-');
    const logins = events.filter((e) => e.subtype?.[0]?.code === '110122');
    for (const e of logins) expect(fhirSchemaErrors(e)).toEqual([]);
    expect(logins.flatMap((e) => balpProblems(e).map((m) => `${e.id ?? ''}: ${m}`))).toEqual([]);
    // Every form request (the JSON body never reached the handler): one event each, or counted in a summary.
    const countOf = (e: (typeof logins)[number]): number | undefined => {
      const v = e.entity?.flatMap((x) => x.detail ?? []).find((d) => d.type === 'count')?.valueString;
      return v === undefined ? undefined : Number(v);
    };
    expect(logins.reduce((n, e) => n + (countOf(e) ?? 1), 0)).toBe(sent);
    expect(logins.filter((e) => e.outcome === '0').length).toBe(5);
    // Rate-limit refusals: the first per gateway on its own (but the one the trail refused), the rest of the window
    // one summary per gateway.
    const limited = logins.filter((e) => e.outcomeDesc?.startsWith('E_RATE_LIMITED') === true);
    const client = { system: 'urn:phi-broker:oauth-client', value: 'public-health' };
    const at = { address: '127.0.0.1', type: '2' };
    expect(
      limited
        .map((e) => [e.outcome, e.outcomeDesc, countOf(e) ?? 0, e.entity?.[0]?.what?.identifier, e.agent[0]?.network])
        .sort((x, y) => Number(x[2]) - Number(y[2])),
    ).toEqual([
      ['4', 'E_RATE_LIMITED', 0, client, at],
      ['4', 'E_RATE_LIMITED: 2 more token requests refused', 2, client, at],
      ['4', 'E_RATE_LIMITED: 3 more token requests refused', 3, client, at],
    ]);
    // The two requests refused for their body (JSON, oversized): no client named, the address kept.
    const body = logins.filter((e) => e.outcomeDesc === 'E_PARTNER_REQUEST at body');
    expect(body.map((e) => [e.outcome, e.agent[0]?.network, e.entity?.[0]?.what?.identifier])).toEqual([
      ['4', at, undefined],
      ['4', at, undefined],
    ]);
    const replay = logins.find((e) => e.outcomeDesc === 'E_PARTNER_AUTH at client_assertion.jti');
    expect(replay?.entity?.[0]?.what?.identifier).toEqual({
      system: 'urn:phi-broker:oauth-client',
      value: 'partner-payer',
    });
    const granted = logins.find((e) => e.outcome === '0');
    expect(granted?.agent[0]?.who?.identifier?.value).toBe('partner-payer');
    expect(granted?.agent[0]?.network?.address).toBe('127.0.0.1');
    expect(gw.baseUrl).toBe(BASE_URL);
  });
});
