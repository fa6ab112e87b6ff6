// The `gateway-inbound` scenario (docs/performance-evidence.md): one ExplanationOfBenefit per request, created by
// the partner `partner-payer` two ways in one run against the same nats-server and broker process: published
// directly with the SDK as the partner (over mTLS as its identity), and `POST /ExplanationOfBenefit` through a
// gateway process over HTTPS (keep-alive, a SMART Backend Services bearer token from the token endpoint). Both are
// closed loops of the same concurrency; each request's latency runs from the call to the broker's receipt (SDK) or
// to the `201` (HTTPS).
import { randomUUID } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import type { NatsConnection } from 'nats';
import { parseDocument, type Document } from 'yaml';
import { parseConfig } from '../src/config/config.js';
import { PhiClient } from '../src/sdk/client.js';
import { loadCatalog } from '../src/runtime/catalog-dir.js';
import { ensureBrokerSecrets } from '../src/runtime/broker-secrets.js';
import { ensureDevKeys, readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { provisionStreams } from '../src/runtime/provision.js';
import { ADMIN_IDENTITY, serviceIdentity } from '../src/tls/identity.js';
import { tlsLayout } from '../src/tls/store.js';
import { BROKER_ID } from '../src/wire/ids.js';
import { Child } from './child.js';
import { machinePercent, machineSample, sample, cpuPercent, type ProcSample } from './proc.js';
import { percentiles, type Latency } from './latency.js';
import { connectBench, issueBenchCertificates, startBenchNats } from './tls.js';

/** The partner that creates resources through the gateway (subjects/services.yaml: `system/ExplanationOfBenefit.c`). */
const PARTNER = 'partner-payer';
const BASE_URL = 'https://partners.bench.test';

export interface GatewayInboundArm {
  /** Requests answered in the measured window, and how many of them were not accepted. */
  readonly requests: number;
  readonly failed: number;
  readonly perSec: number;
  readonly latencyMs: Latency;
  /** CPU % of one core over the measured window. */
  readonly cpu: {
    readonly machine: number;
    readonly natsServer: number;
    readonly broker: number;
    readonly gateway: number;
    readonly client: number;
  };
}

export interface GatewayInboundResult {
  readonly resource: 'ExplanationOfBenefit';
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly sdk: GatewayInboundArm;
  readonly gateway: GatewayInboundArm;
  /** gateway ÷ SDK: requests/s (below 1: the gateway is slower) and p50/p99 latency (above 1: slower). */
  readonly ratio: { readonly perSec: number; readonly p50: number; readonly p99: number };
}

export interface GatewayInboundOptions {
  readonly dir: string;
  readonly root: string;
  readonly quick: boolean;
}

function eob(): Record<string, unknown> {
  return {
    resourceType: 'ExplanationOfBenefit',
    id: randomUUID(),
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'claim',
    patient: { reference: 'Patient/pat-bench-1' },
    created: '2026-11-30T10:00:00Z',
    insurer: { display: 'Example Payer' },
    provider: { display: 'Example Clinic' },
    outcome: 'complete',
    insurance: [{ focal: true, coverage: { display: 'Example Plan' } }],
  };
}

/** The repository catalog with the partner's client key replaced by one the bench holds, and a limit it never reaches. */
async function benchCatalogDir(root: string, dir: string): Promise<{ subjects: string; key: CryptoKey }> {
  const subjects = join(dir, 'subjects');
  cpSync(join(root, 'subjects'), subjects, { recursive: true });
  const file = join(subjects, 'services.yaml');
  const doc: Document = parseDocument(readFileSync(file, 'utf8'));
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'payer-bench', alg: 'ES384' };
  const services = doc.get('services') as {
    items: { get(k: string): unknown; setIn(p: unknown[], v: unknown): void }[];
  };
  const payer = services.items.find((s) => s.get('id') === PARTNER);
  if (payer === undefined) throw new Error(`subjects/services.yaml has no ${PARTNER}`);
  payer.setIn(['partner', 'jwks', 'keys'], doc.createNode([jwk]));
  payer.setIn(['partner', 'rateLimit'], doc.createNode({ max: 100_000, windowSeconds: 1 }));
  writeFileSync(file, doc.toString());
  return { subjects, key: privateKey };
}

interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

function post(agent: Agent, url: string, body: string, headers: Record<string, string>): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A SMART Backend Services token (RFC 7523 client assertion, ES384) for `system/ExplanationOfBenefit.c`. */
async function accessToken(agent: Agent, url: string, key: CryptoKey): Promise<string> {
  const assertion = await new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES384', kid: 'payer-bench', typ: 'JWT' })
    .setIssuer(PARTNER)
    .setSubject(PARTNER)
    .setAudience(`${BASE_URL}/auth/token`)
    .setExpirationTime('4m')
    .sign(key);
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    scope: 'system/ExplanationOfBenefit.c',
  }).toString();
  const r = await post(agent, `${url}/auth/token`, form, { 'content-type': 'application/x-www-form-urlencoded' });
  if (r.status !== 200) throw new Error(`token endpoint answered ${r.status}`);
  return (JSON.parse(r.text) as { access_token: string }).access_token;
}

/**
 * `concurrency` loops calling `once` until the window ends; the calls that start after the warm-up and end inside
 * the window are measured. `once` resolves true for an accepted resource.
 */
async function closedLoop(
  concurrency: number,
  warmupMs: number,
  measureMs: number,
  once: () => Promise<boolean>,
  pids: { nats: number; broker: number; gateway: number },
): Promise<GatewayInboundArm> {
  const start = performance.now();
  const from = start + warmupMs;
  const until = from + measureMs;
  const latencies: number[] = [];
  let failed = 0;
  let before: { m: ReturnType<typeof machineSample>; p: (ProcSample | undefined)[] } | undefined;
  const timer = setTimeout(
    () => {
      before = { m: machineSample(), p: [pids.nats, pids.broker, pids.gateway, process.pid].map(sample) };
    },
    Math.max(0, from - performance.now()),
  );
  const loop = async (): Promise<void> => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= until) return;
      const ok = await once();
      const t1 = performance.now();
      if (t0 >= from && t1 <= until) {
        latencies.push(t1 - t0);
        if (!ok) failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  clearTimeout(timer);
  const after = { m: machineSample(), p: [pids.nats, pids.broker, pids.gateway, process.pid].map(sample) };
  const pct = (i: number): number => {
    const a = before?.p[i];
    const b = after.p[i];
    return a === undefined || b === undefined ? NaN : cpuPercent(a, b);
  };
  return {
    requests: latencies.length,
    failed,
    perSec: (latencies.length - failed) / (measureMs / 1000),
    latencyMs: percentiles(latencies),
    cpu: {
      machine: before === undefined ? NaN : machinePercent(before.m, after.m).busy,
      natsServer: pct(0),
      broker: pct(1),
      gateway: pct(2),
      client: pct(3),
    },
  };
}

export async function runGatewayInbound(
  o: GatewayInboundOptions,
  log: (line: string) => void,
): Promise<GatewayInboundResult> {
  const concurrency = 8;
  const warmupMs = o.quick ? 750 : 5_000;
  const measureMs = o.quick ? 2_000 : 10_000;
  mkdirSync(o.dir, { recursive: true });
  const { subjects, key } = await benchCatalogDir(o.root, o.dir);
  const profilesDir = join(o.root, 'fhir-profiles');
  const catalog = loadCatalog({ subjects, profiles: profilesDir });
  const keysDir = join(o.dir, 'keys');
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  ensureDevKeys(keysDir, [BROKER_ID, ...catalog.services.keys()]);
  ensureBrokerSecrets(keysDir);
  const tlsDir = await issueBenchCertificates(join(o.dir, 'tls'), [...catalog.services.keys()]);
  const nats = await startBenchNats(join(o.dir, 'nats'), catalog, tlsDir, 4 * 1024 * 1024);
  const children: Child[] = [];
  let client: PhiClient | undefined;
  let partnerNc: NatsConnection | undefined;
  const agent = new Agent({
    keepAlive: true,
    maxSockets: concurrency,
    ca: readFileSync(tlsLayout(tlsDir).ca.certFile, 'utf8'),
  });
  try {
    const config = parseConfig({
      dataDir: join(o.dir, 'broker'),
      natsUrl: nats.url,
      subjectsDir: subjects,
      profilesDir,
    });
    const admin = await connectBench(nats.url, 'bench admin', ADMIN_IDENTITY, tlsDir);
    await provisionStreams(admin, config, catalog);
    await admin.drain();
    const common = { natsUrl: nats.url, subjectsDir: subjects, profilesDir, keysDir, tlsDir };
    const broker = new Child('broker', './broker-process.js', {
      ...common,
      dataDir: join(o.dir, 'broker'),
      logFile: join(o.dir, 'broker.log'),
    });
    children.push(broker);
    await broker.next('ready', 60_000);
    const gateway = new Child('gateway', './gateway-process.js', {
      ...common,
      dataDir: join(o.dir, 'gateway'),
      logFile: join(o.dir, 'gateway.log'),
      baseUrl: BASE_URL,
    });
    children.push(gateway);
    const url = String((await gateway.next('ready', 60_000))['url']);
    const pids = { nats: nats.pid, broker: broker.pid, gateway: gateway.pid };

    partnerNc = await connectBench(nats.url, 'bench partner', serviceIdentity(PARTNER), tlsDir);
    client = await PhiClient.connect({
      nc: partnerNc,
      service: PARTNER,
      keys: readServiceKeys(keysDir, PARTNER),
      peers: readJwks(keysDir),
    });
    const sdk = client;
    log(`run gateway-inbound: SDK as ${PARTNER}, closed ×${concurrency} …`);
    const direct = await closedLoop(
      concurrency,
      warmupMs,
      measureMs,
      async () => (await sdk.publish(eob())).status === 'accepted',
      pids,
    );
    log(`  ${Math.round(direct.perSec)} resources/s, p99 ${direct.latencyMs.p99.toFixed(1)} ms`);

    const token = await accessToken(agent, url, key);
    const headers = { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` };
    log(`run gateway-inbound: POST /ExplanationOfBenefit over HTTPS, closed ×${concurrency} …`);
    const https = await closedLoop(
      concurrency,
      warmupMs,
      measureMs,
      async () => (await post(agent, `${url}/ExplanationOfBenefit`, JSON.stringify(eob()), headers)).status === 201,
      pids,
    );
    log(`  ${Math.round(https.perSec)} resources/s, p99 ${https.latencyMs.p99.toFixed(1)} ms`);

    gateway.send({ cmd: 'stop' });
    await gateway.next('stopped', 30_000);
    broker.send({ cmd: 'stop' });
    await broker.next('stopped', 30_000);
    return {
      resource: 'ExplanationOfBenefit',
      concurrency,
      warmupMs,
      measureMs,
      sdk: direct,
      gateway: https,
      ratio: {
        perSec: https.perSec / direct.perSec,
        p50: https.latencyMs.p50 / direct.latencyMs.p50,
        p99: https.latencyMs.p99 / direct.latencyMs.p99,
      },
    };
  } finally {
    agent.destroy();
    await client?.close().catch(() => undefined);
    // The SDK leaves the connection it was given to its owner.
    await partnerNc?.close().catch(() => undefined);
    for (const c of children) c.kill();
    await nats.stop();
  }
}
