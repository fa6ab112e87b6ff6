// Partner authentication options of the gateway against a real nats-server (mTLS), a real broker, two real HTTPS
// gateways and a loopback HTTPS JWKS server (its own CA, as a partner's would be): partner-payer's keys live at its
// JWKS URL and it authenticates with mutual TLS (RFC 8705); public-health's keys live at its own URL, no mTLS. A key
// served at the URL grants a token; a rotated key (new kid) is fetched again; a key at payer's URL never signs for
// public-health; jku must be the registered URL; an unknown kid refetches at most once per cooldown; the URL
// unreachable, erroring or hanging is a coded, audited invalid_client. With the right certificate a token is
// granted (bound: cnf x5t#S256) and a POST is accepted; no certificate, another partner's, or the right subject from
// another CA is refused; a bound token over a connection with another certificate or none is 401.
import { X509Certificate, createHash, randomUUID } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../src/gateway/gateway.js';
import {
  createCa,
  issuePartnerCertificate,
  issueServerCertificate,
  type IssuedCertificate,
} from '../../src/tls/certificates.js';
import { readCa, tlsLayout } from '../../src/tls/store.js';
import { runPartnerToken } from '../../src/cli/partner.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { gatewayAuditEvents, startTestGateway } from '../helpers/gateway.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const BASE_URL = 'https://partners.example.test';
const PAYER_DN = 'CN=partner-payer,OU=partner,O=phi-broker';
const HEALTH_DN = 'CN=public-health,OU=partner,O=phi-broker';
const DAY = 86_400_000;

interface Signer {
  readonly kid: string;
  readonly key: CryptoKey;
  readonly jwk: JWK;
}
type Mode = 'ok' | 'reset' | 'error' | 'hang';

/** The JWKS server: the set each path serves, how it answers, and how many fetches each path got. */
const served = new Map<string, { keys: JWK[] }>();
const mode = new Map<string, Mode>();
const fetches = new Map<string, number>();
let jwksServer: Server;
let jwksUrl: (path: string) => string;

let stack: TestStack;
/** No cooldown: every unknown kid refetches (rotation is seen at once). */
let gw: Gateway;
/** jose's default cooldown (30 s): an unknown kid refetches at most once per cooldown. */
let gw2: Gateway;
let ca: string;
let payerCert: IssuedCertificate;
let healthCert: IssuedCertificate;
let strangerCert: IssuedCertificate;
let jwksCaPem: string;

async function signer(kid: string): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
  return { kid, key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' } };
}

function startJwksServer(tls: IssuedCertificate): Promise<Server> {
  const server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const path = req.url ?? '';
    fetches.set(path, (fetches.get(path) ?? 0) + 1);
    const m = mode.get(path) ?? 'ok';
    if (m === 'reset') return req.socket.destroy();
    if (m === 'hang') return undefined; // never answers: the gateway's timeout ends it
    const set = served.get(path);
    if (m === 'error' || set === undefined) return res.writeHead(503).end();
    return res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(set));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** The shipped catalog with both partners' keys at the JWKS server, and payer on mutual TLS. */
function partnerCatalog(): string {
  const dir = mkdtempSync(join(tmpdir(), 'phi-gateway-partner-auth-'));
  cpSync(join(ROOT, 'subjects'), dir, { recursive: true });
  const file = join(dir, 'services.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const services = doc.get('services') as {
    items: { get(k: string): unknown; setIn(p: unknown[], v: unknown): void; deleteIn(p: unknown[]): void }[];
  };
  for (const id of ['partner-payer', 'public-health']) {
    const s = services.items.find((x) => x.get('id') === id);
    s?.deleteIn(['partner', 'jwks']);
    s?.setIn(['partner', 'jwksUrl'], jwksUrl(`/${id}.json`));
  }
  services.items
    .find((x) => x.get('id') === 'partner-payer')
    ?.setIn(['partner', 'mtls'], doc.createNode({ subjectDn: PAYER_DN }));
  writeFileSync(file, doc.toString());
  return dir;
}

interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

/** One request on a fresh TLS connection (no pooling across certificates), with `cert` as the client certificate. */
function send(
  url: string,
  opts: { method?: string; body?: string; headers?: Record<string, string>; cert?: IssuedCertificate },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? 'POST',
        ca,
        agent: false,
        headers: opts.headers ?? {},
        ...(opts.cert === undefined ? {} : { cert: opts.cert.certPem, key: opts.cert.keyPem }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function assertion(client: string, s: Signer, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES384', kid: s.kid, typ: 'JWT', ...header })
    .setIssuer(client)
    .setSubject(client)
    .setAudience(`${BASE_URL}/auth/token`)
    .setExpirationTime('4m')
    .sign(s.key);
}

let audited = 0;
async function token(
  g: Gateway,
  client: string,
  s: Signer,
  opts: { scope?: string; cert?: IssuedCertificate; header?: Record<string, unknown> } = {},
): Promise<Answer> {
  audited += 1;
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await assertion(client, s, opts.header),
    scope: opts.scope ?? (client === 'partner-payer' ? 'system/ExplanationOfBenefit.c' : 'system/Immunization.rs'),
  }).toString();
  return send(`${g.url}/auth/token`, {
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    ...(opts.cert === undefined ? {} : { cert: opts.cert }),
  });
}

function expectRefused(r: Answer, description: string): void {
  expect({ status: r.status, ...r.json }).toEqual({
    status: 401,
    error: 'invalid_client',
    error_description: description,
  });
}

const thumbprint = (c: IssuedCertificate): string =>
  createHash('sha256').update(new X509Certificate(c.certPem).raw).digest('base64url');

const eob = (): Record<string, unknown> => ({
  resourceType: 'ExplanationOfBenefit',
  id: randomUUID(),
  status: 'active',
  type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
  use: 'claim',
  patient: { reference: 'Patient/pat-partner-auth-1' },
  created: '2026-11-30T10:00:00Z',
  insurer: { display: 'Example Payer' },
  provider: { display: 'Example Clinic' },
  outcome: 'complete',
  insurance: [{ focal: true, coverage: { display: 'Example Plan' } }],
});

const postEob = (g: Gateway, accessToken: string, cert?: IssuedCertificate): Promise<Answer> =>
  send(`${g.url}/ExplanationOfBenefit`, {
    body: JSON.stringify(eob()),
    headers: {
      'content-type': 'application/fhir+json',
      authorization: `Bearer ${accessToken}`,
      'idempotency-key': randomUUID(),
    },
    ...(cert === undefined ? {} : { cert }),
  });

let payer: Signer;
let health: Signer;

beforeAll(async () => {
  const now = Date.now();
  // The partners' JWKS host has a CA of its own, as a public one would be: the gateway is told to trust it.
  const jwksCa = await createCa({ now, lifetimeMs: DAY }, 'partner JWKS host CA');
  jwksCaPem = jwksCa.certPem;
  jwksServer = await startJwksServer(await issueServerCertificate(jwksCa, ['127.0.0.1'], { now, lifetimeMs: DAY }));
  const port = (jwksServer.address() as AddressInfo).port;
  jwksUrl = (path) => `https://127.0.0.1:${port}${path}`;
  payer = await signer('payer-1');
  health = await signer('health-1');
  served.set('/partner-payer.json', { keys: [payer.jwk] });
  served.set('/public-health.json', { keys: [health.jwk] });
  stack = await startTestStack({ config: { subjectsDir: partnerCatalog(), gatewayPort: 0 } });
  const tls = stack.nats.tls;
  if (tls === undefined) throw new Error('expected an mTLS stack');
  ca = readFileSync(tls.ca.certFile, 'utf8');
  const projectCa = readCa(tls);
  payerCert = await issuePartnerCertificate(projectCa, PAYER_DN, { now, lifetimeMs: DAY });
  healthCert = await issuePartnerCertificate(projectCa, HEALTH_DN, { now, lifetimeMs: DAY });
  // payer's subject, signed by a CA the gateway does not trust for client certificates.
  strangerCert = await issuePartnerCertificate(jwksCa, PAYER_DN, { now, lifetimeMs: DAY });
  const start = (n: number, cooldownMs: number): Promise<Gateway> =>
    startTestGateway(stack, n, `gw-partner-auth-${n}`, {
      config: { ...stack.config, gatewayBaseUrl: BASE_URL },
      tls: { ...tls.gateway, clientCaFile: tls.ca.certFile },
      jwksFetch: { timeoutMs: 1_000, cooldownMs, cacheMaxAgeMs: 600_000, ca: jwksCa.certPem },
    });
  gw = await start(1, 0);
  gw2 = await start(2, 30_000);
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await gw2?.stop();
  await stack?.stop();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

describe('partner keys at a JWKS URL', () => {
  it('grants a token signed with a key served at the URL, and fetches the rotated set for a new kid', async () => {
    const first = await token(gw, 'public-health', health);
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(fetches.get('/public-health.json')).toBe(1);
    // Cached: the same kid again fetches nothing.
    expect((await token(gw, 'public-health', health)).status).toBe(200);
    expect(fetches.get('/public-health.json')).toBe(1);
    // The partner rotates: a new kid replaces the old one at its URL.
    const rotated = await signer('health-2');
    served.set('/public-health.json', { keys: [rotated.jwk] });
    expect((await token(gw, 'public-health', rotated)).status).toBe(200);
    expect(fetches.get('/public-health.json')).toBe(2);
    expectRefused(
      await token(gw, 'public-health', health),
      "E_PARTNER_AUTH at client_assertion.header.kid: not a key id of this client's registered keys",
    );
    health = rotated;
  });

  it("never verifies one partner's assertion with a key served at another partner's URL", async () => {
    const intruder = await signer('payer-extra');
    served.set('/partner-payer.json', { keys: [payer.jwk, intruder.jwk] });
    expectRefused(
      await token(gw, 'public-health', intruder),
      "E_PARTNER_AUTH at client_assertion.header.kid: not a key id of this client's registered keys",
    );
    // public-health's set was fetched for that kid; payer's URL, where the key is, was not consulted.
    expect(fetches.get('/partner-payer.json')).toBeUndefined();
    // payer's own kid, asserted as public-health: looked up in public-health's set only.
    expectRefused(
      await token(gw, 'public-health', payer),
      "E_PARTNER_AUTH at client_assertion.header.kid: not a key id of this client's registered keys",
    );
    served.set('/partner-payer.json', { keys: [payer.jwk] });
  });

  it('takes a jku header only when it is the registered JWKS URL (SMART Backend Services)', async () => {
    expect((await token(gw, 'public-health', health, { header: { jku: jwksUrl('/public-health.json') } })).status).toBe(
      200,
    );
    expectRefused(
      await token(gw, 'public-health', health, { header: { jku: jwksUrl('/partner-payer.json') } }),
      "E_PARTNER_AUTH at client_assertion.header.jku: not this client's registered JWKS URL",
    );
  });

  it('refetches for an unknown kid at most once per cooldown', async () => {
    const before = fetches.get('/partner-payer.json') ?? 0;
    const stranger = await signer('nobody');
    // gw2 has not fetched payer's set: the first request fetches it; the kid is missing, but it was just fetched.
    for (let i = 0; i < 3; i += 1)
      expectRefused(
        await token(gw2, 'partner-payer', stranger, { cert: payerCert }),
        "E_PARTNER_AUTH at client_assertion.header.kid: not a key id of this client's registered keys",
      );
    expect((fetches.get('/partner-payer.json') ?? 0) - before).toBe(1);
    // Without a cooldown (gw) each unknown kid refetches once its set is cached: the bound is the cooldown.
    await token(gw, 'partner-payer', stranger, { cert: payerCert });
    const beforeGw = fetches.get('/partner-payer.json') ?? 0;
    for (let i = 0; i < 2; i += 1) await token(gw, 'partner-payer', stranger, { cert: payerCert });
    expect((fetches.get('/partner-payer.json') ?? 0) - beforeGw).toBe(2);
  });

  it('refuses with E_PARTNER_JWKS, never a crash, when the URL is unreachable, erroring or hanging', async () => {
    // gw2 has never fetched public-health's set: it must fetch now, and the host resets the connection.
    mode.set('/public-health.json', 'reset');
    expectRefused(
      await token(gw2, 'public-health', health),
      "E_PARTNER_JWKS at jwks_url: the client's registered JWKS URL could not be used: unreachable",
    );
    mode.set('/public-health.json', 'error');
    const fresh = await signer('health-3');
    expectRefused(
      await token(gw, 'public-health', fresh),
      "E_PARTNER_JWKS at jwks_url: the client's registered JWKS URL could not be used: the response is not 200 OK with a JSON JWK Set",
    );
    mode.set('/public-health.json', 'hang');
    expectRefused(
      await token(gw, 'public-health', fresh),
      "E_PARTNER_JWKS at jwks_url: the client's registered JWKS URL could not be used: timed out",
    );
    // Back up: the gateways serve again.
    mode.set('/public-health.json', 'ok');
    expect((await token(gw2, 'public-health', health)).status).toBe(200);
  });
});

describe('mutual TLS (RFC 8705) for a partner registered with mtls', () => {
  let bound: string;

  it('grants a certificate-bound token for the registered certificate, and a POST with it is accepted', async () => {
    const r = await token(gw, 'partner-payer', payer, { cert: payerCert });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    bound = r.json['access_token'] as string;
    expect(decodeJwt(bound)['cnf']).toEqual({ 'x5t#S256': thumbprint(payerCert) });
    // RFC 8705 §3.3 metadata: this gateway binds tokens.
    const smart = await send(`${gw.url}/.well-known/smart-configuration`, { method: 'GET' });
    expect(smart.json['tls_client_certificate_bound_access_tokens']).toBe(true);
    const posted = await postEob(gw2, bound, payerCert);
    expect(posted.status, JSON.stringify(posted.json)).toBe(201);
    expect(fhirSchemaErrors(posted.json)).toEqual([]);
  });

  it("refuses the token request without a certificate, with another partner's, or with one another CA signed", async () => {
    for (const cert of [undefined, healthCert, strangerCert])
      expectRefused(
        await token(gw, 'partner-payer', payer, cert === undefined ? {} : { cert }),
        cert === healthCert
          ? "E_PARTNER_AUTH at client_certificate: the client certificate's subject is not the one registered for this client"
          : 'E_PARTNER_AUTH at client_certificate: this client authenticates with mutual TLS (RFC 8705): present its client certificate',
      );
  });

  it('answers 401 to a bound token over a connection with another certificate or none, on every route', async () => {
    for (const cert of [healthCert, undefined]) {
      const r = await postEob(gw, bound, cert);
      expect(r.status).toBe(401);
      expect(fhirSchemaErrors(r.json)).toEqual([]);
      expect(r.json).toMatchObject({
        issue: [{ code: 'login', details: { coding: [{ code: 'E_PARTNER_TOKEN' }] } }],
      });
      expect(JSON.stringify(r.json)).toContain(
        cert === undefined ? 'this connection presented none' : 'another client certificate',
      );
    }
    // The Subscription routes hold bound tokens to the same rule.
    const sub = await send(`${gw.url}/Subscription/not-a-subscription`, {
      method: 'GET',
      headers: { authorization: `Bearer ${bound}` },
      cert: healthCert,
    });
    expect(sub.status).toBe(401);
    const own = await send(`${gw.url}/Subscription/not-a-subscription`, {
      method: 'GET',
      headers: { authorization: `Bearer ${bound}` },
      cert: payerCert,
    });
    expect(own.status).toBe(404);
  });

  it('`partner token --as` connects with the partner certificate `certs init` wrote, and gets a bound token', async () => {
    const tls = stack.nats.tls;
    if (tls === undefined) throw new Error('expected an mTLS stack');
    // A gateway whose base URL is its own address, as the CLI's --url names it.
    const local = await startTestGateway(stack, 3, 'gw-partner-auth-cli', {
      tls: { ...tls.gateway, clientCaFile: tls.ca.certFile },
      jwksFetch: { timeoutMs: 1_000, cooldownMs: 0, cacheMaxAgeMs: 600_000, ca: jwksCaPem },
    });
    const dir = mkdtempSync(join(tmpdir(), 'phi-partner-token-'));
    try {
      const keyFile = join(dir, 'payer.private.jwk.json');
      writeFileSync(keyFile, JSON.stringify({ ...(await exportJWK(payer.key)), kid: payer.kid, alg: 'ES384' }), {
        mode: 0o600,
      });
      const opts = { as: 'partner-payer', key: keyFile, url: local.baseUrl };
      // Before `certs init` wrote the partner's certificate: the CLI says what is missing.
      await expect(runPartnerToken(stack.config, opts, new PassThrough())).rejects.toMatchObject({
        code: 'E_SETUP_MISSING',
      });
      const files = tlsLayout(tls.dir).partner('partner-payer');
      mkdirSync(dirname(files.certFile), { recursive: true });
      writeFileSync(files.certFile, payerCert.certPem);
      writeFileSync(files.keyFile, payerCert.keyPem, { mode: 0o600 });
      const out = new PassThrough();
      await runPartnerToken(stack.config, opts, out);
      audited += 1; // the only request of this test that reached a token endpoint
      const printed = String(out.read()).trim();
      expect(decodeJwt(printed)['cnf']).toEqual({ 'x5t#S256': thumbprint(payerCert) });
    } finally {
      await local.stop();
    }
  });

  it('leaves a partner without mtls unaffected: no certificate needed, none bound when one is presented', async () => {
    expect((await token(gw, 'public-health', health)).status).toBe(200);
    const withCert = await token(gw, 'public-health', health, { cert: payerCert });
    expect(withCert.status).toBe(200);
    expect(decodeJwt(withCert.json['access_token'] as string)['cnf']).toBeUndefined();
  });
});

describe('audit', () => {
  it('records every token request, the JWKS and certificate refusals included, as FHIR R4 AuditEvents', async () => {
    await gw.stop();
    await gw2.stop();
    const events = await gatewayAuditEvents(stack, 'gw-partner-auth-');
    const logins = events.filter((e) => e.subtype?.[0]?.code === '110122');
    expect(logins.length).toBe(audited);
    for (const e of logins) expect(fhirSchemaErrors(e)).toEqual([]);
    const descs = logins.map((e) => e.outcomeDesc);
    expect(descs.filter((d) => d === 'E_PARTNER_JWKS at jwks_url').length).toBe(3);
    expect(descs.filter((d) => d === 'E_PARTNER_AUTH at client_certificate').length).toBe(3);
    const jwksRefusal = logins.find((e) => e.outcomeDesc === 'E_PARTNER_JWKS at jwks_url');
    expect(jwksRefusal?.outcome).toBe('4');
    expect(jwksRefusal?.entity?.[0]?.what?.identifier?.value).toBe('public-health');
  });
});
