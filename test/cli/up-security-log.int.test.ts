// nats-server's refusals become security-incident AuditEvents (docs/audit.md, "Security incidents"), on real
// processes: `phi-broker up` over mTLS with a 1 s aggregation interval and a 4 KiB nats-server log limit (so the
// server rotates its log during the test). Provoked: (a) a service publishing and subscribing where its permissions
// deny, with a planted value in the payload and as a subject; (b) a TLS client without a certificate; (c) a
// certificate of the right CA for an identity the server does not know; a burst of 50 denied publishes from one
// service; a certificate of another CA in a real service's name. Read back from PHI_AUDIT as the auditor: the identities and kinds, no planted value, every event valid
// against the FHIR R4 JSON schema, the burst's counts summing to 50 in a bounded number of events, the alert.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import { connect, StringCodec, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord } from '../../src/audit/record.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { mtlsConnectionOptions } from '../../src/nats/connect-options.js';
import { identityInbox } from '../../src/nats/permissions.js';
import { createCa, issueClientCertificate } from '../../src/tls/certificates.js';
import { AUDITOR_IDENTITY, serviceIdentity, type Identity } from '../../src/tls/identity.js';
import { readCa, tlsLayout } from '../../src/tls/store.js';
import { NOT_A_PHI_BROKER_SUBJECT } from '../../src/wire/names.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { killLeftovers, startUp, type UpProcess } from './run-cli.js';

const PLANTED = 'Zephyrine-Oakhollow-4471';
let dir: string;
let dataDir: string;
let up: UpProcess;
const tls = () => tlsLayout(join(dataDir, 'tls'));
const serverUrl = (): string =>
  (JSON.parse(readFileSync(join(dataDir, 'nats', 'server.json'), 'utf8')) as { url: string }).url;

async function connectAs(identity: Identity): Promise<NatsConnection> {
  return connect({
    ...mtlsConnectionOptions(serverUrl(), tls().identity(identity), identityInbox(identity), 'test'),
    reconnect: false,
  });
}

/** The security-incident and alert AuditEvents in PHI_AUDIT, and every stored byte and rendered event as text. */
async function auditTrail(): Promise<{ events: AuditEvent[]; text: string }> {
  const nc = await connectAs(AUDITOR_IDENTITY);
  try {
    const events: AuditEvent[] = [];
    let text = '';
    for await (const r of readAuditRecords(nc)) {
      text += new TextDecoder().decode(r.data);
      for (const e of decodeRecord(r.data)?.events ?? []) events.push(e);
    }
    return { events, text: text + JSON.stringify(events) };
  } finally {
    await nc.close();
  }
}

const kind = (e: AuditEvent): string | undefined =>
  e.subtype?.find((c) => c.system === 'urn:phi-broker:security-incident')?.code;
const agentId = (e: AuditEvent): string | undefined => e.agent[0]?.who?.identifier?.value;
const count = (e: AuditEvent): number =>
  Number(e.entity?.flatMap((x) => x.detail ?? []).find((d) => d.type === 'count')?.valueString);

/** Bounded wait (count and time) until the trail holds what `done` looks for. */
async function trailUntil(
  what: string,
  done: (events: AuditEvent[]) => boolean,
): Promise<{ events: AuditEvent[]; text: string }> {
  for (let i = 0; i < 60; i++) {
    const t = await auditTrail();
    if (done(t.events)) return t;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}\nup stderr:\n${up.stderr().slice(-4000)}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-seclog-'));
  dataDir = join(dir, 'data');
  up = await startUp(['--data-dir', dataDir], {
    env: { PHI_BROKER_SECURITY_LOG_INTERVAL_MS: '1000', PHI_BROKER_NATS_LOG_MAX_BYTES: '4096' },
  });
}, 90_000);

afterAll(async () => {
  if (up !== undefined) await up.stop('SIGTERM');
  await killLeftovers();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('nats-server refusals in the audit trail', () => {
  it('(a) permission violations, (b) no client certificate, (c) an unknown identity, and a burst of 50: AuditEvents, counts, alert', async () => {
    const sc = StringCodec();
    // (a) notification may neither publish registration's Patients nor read registration's deliveries.
    const notification = await connectAs(serviceIdentity('notification'));
    notification.publish('phi.ingest.registration.Patient', sc.encode(`{"family":"${PLANTED}"}`));
    notification.publish(`${PLANTED}.Patient`, sc.encode('x'));
    notification.subscribe('phi.deliver.registration.Patient');
    await notification.flush().catch(() => {});
    await notification.close().catch(() => {});
    // (b) A client that trusts the CA but presents no certificate.
    const noCert = await connect({
      servers: serverUrl(),
      reconnect: false,
      timeout: 3_000,
      tls: { caFile: tls().ca.certFile },
    }).then(
      (nc) => nc.close().then(() => 'connected'),
      () => 'refused',
    );
    expect(noCert).toBe('refused');
    // (c) A certificate the CA signed for an identity no configured user maps to.
    const intruder = await issueClientCertificate(readCa(tls()), serviceIdentity('intruder'), {
      now: Date.now(),
      lifetimeMs: 3_600_000,
    });
    writeFileSync(join(dir, 'intruder.cert.pem'), intruder.certPem);
    writeFileSync(join(dir, 'intruder.key.pem'), intruder.keyPem, { mode: 0o600 });
    const unknown = await connect({
      servers: serverUrl(),
      reconnect: false,
      timeout: 3_000,
      tls: {
        caFile: tls().ca.certFile,
        certFile: join(dir, 'intruder.cert.pem'),
        keyFile: join(dir, 'intruder.key.pem'),
      },
    }).then(
      (nc) => nc.close().then(() => 'connected'),
      () => 'refused',
    );
    expect(unknown).toBe('refused');
    // (c') A certificate of another CA, for a real identity's name: refused at the handshake.
    const otherCa = await createCa({ now: Date.now(), lifetimeMs: 3_600_000 });
    const forged = await issueClientCertificate(otherCa, serviceIdentity('billing'), {
      now: Date.now(),
      lifetimeMs: 3_600_000,
    });
    writeFileSync(join(dir, 'forged.cert.pem'), forged.certPem);
    writeFileSync(join(dir, 'forged.key.pem'), forged.keyPem, { mode: 0o600 });
    const forgedResult = await connect({
      servers: serverUrl(),
      reconnect: false,
      timeout: 3_000,
      tls: { caFile: tls().ca.certFile, certFile: join(dir, 'forged.cert.pem'), keyFile: join(dir, 'forged.key.pem') },
    }).then(
      (nc) => nc.close().then(() => 'connected'),
      () => 'refused',
    );
    expect(forgedResult).toBe('refused');
    // A burst: 50 denied publishes from billing, on one connection.
    const billing = await connectAs(serviceIdentity('billing'));
    for (let i = 0; i < 50; i++) billing.publish('phi.ingest.registration.Patient', sc.encode(`{"n":${i}}`));
    await billing.flush().catch(() => {});
    await billing.close().catch(() => {});

    const sumOf = (events: AuditEvent[], who: string, k: string): number =>
      events.filter((e) => agentId(e) === who && kind(e) === k).reduce((n, e) => n + count(e), 0);
    const { events, text } = await trailUntil(
      'the security incidents and the alert',
      (ev) =>
        sumOf(ev, 'billing', 'publish-violation') >= 50 &&
        sumOf(ev, 'notification', 'publish-violation') >= 2 &&
        sumOf(ev, 'notification', 'subscription-violation') >= 1 &&
        ev.filter((e) => kind(e) === 'tls-handshake').reduce((n, e) => n + count(e), 0) >= 2 &&
        ev.some((e) => kind(e) === 'authentication') &&
        ev.some((e) => e.subtype?.[0]?.code === 'security-incidents'),
    );
    const incidents = events.filter((e) => kind(e) !== undefined);
    for (const e of [...incidents, ...events.filter((e) => e.subtype?.[0]?.code === 'security-incidents')])
      expect(fhirSchemaErrors(e)).toEqual([]);
    // The burst: exactly 50 lines, in a bounded number of events (the 1 s windows it spans), not 50 events.
    const burst = incidents.filter((e) => agentId(e) === 'billing');
    expect(burst.reduce((n, e) => n + count(e), 0)).toBe(50);
    expect(burst.length).toBeLessThanOrEqual(5);
    for (const e of burst) {
      expect(e).toMatchObject({ type: { code: '110113' }, outcome: '4', action: 'E' });
      expect(e.subtype?.[0]?.code).toBe('110132');
      expect(e.entity?.filter((x) => x.name !== undefined).map((x) => x.name)).toEqual([
        'phi.ingest.registration.Patient',
      ]);
    }
    // (a): the grammar's subject by name, the planted one as the placeholder; both violations.
    const subjects = incidents
      .filter((e) => agentId(e) === 'notification' && kind(e) === 'publish-violation')
      .flatMap((e) => e.entity?.map((x) => x.name).filter((n) => n !== undefined) ?? []);
    expect(new Set(subjects)).toEqual(new Set(['phi.ingest.registration.Patient', NOT_A_PHI_BROKER_SUBJECT]));
    expect(sumOf(events, 'notification', 'publish-violation')).toBe(2);
    expect(sumOf(events, 'notification', 'subscription-violation')).toBe(1);
    // (b), (c) and (c'): unauthenticated clients, by address, with the TLS refusal from the closed set.
    const handshake = incidents.filter((e) => kind(e) === 'tls-handshake');
    expect(handshake[0]?.agent[0]).toMatchObject({
      who: { display: 'unauthenticated client' },
      network: { address: '127.0.0.1' },
    });
    const refusals = handshake
      .flatMap((e) => e.entity?.flatMap((x) => x.detail ?? []) ?? [])
      .filter((d) => d.type === 'tls-refusal')
      .map((d) => d.valueString);
    expect(refusals).toContain('no-certificate');
    expect(refusals).toContain('unknown-authority');
    expect(handshake.every((e) => agentId(e) === undefined)).toBe(true); // the forged billing is not taken for billing
    expect(incidents.filter((e) => kind(e) === 'authentication').map((e) => e.subtype?.[0]?.code)).toEqual(['110126']);
    // The alert: for billing (50 ≥ 10 in a minute), not for notification (3).
    const alerts = events.filter((e) => e.subtype?.[0]?.code === 'security-incidents');
    expect(alerts.map((e) => e.agent.find((a) => a.requestor)?.who?.identifier?.value)).toEqual(['billing']);
    expect(up.stderr()).toMatch(/"event":"audit\.alert","rule":"security-incidents","service":"billing"/);
    // Nothing planted reached the trail or up's log.
    expect(text).not.toContain(PLANTED);
    expect(text).not.toContain('intruder');
    expect(up.stderr()).not.toContain(PLANTED);
    // The counter, by kind, on /metrics.
    const health = /health (http:\/\/[^/]+)\/readyz/.exec(up.readyLine)?.[1];
    const metrics = await (await fetch(`${health}/metrics`)).text();
    expect(metrics).toMatch(/^phi_broker_security_incidents_total\{kind="publish-violation"\} 52$/m);
    expect(metrics).toMatch(/^phi_broker_security_incidents_total\{kind="subscription-violation"\} 1$/m);
    expect(metrics).toMatch(/^phi_broker_security_incidents_total\{kind="authentication"\} 1$/m);
    // The server rotated its log meanwhile (4 KiB limit): the counts above were read across the rotation.
    expect(readdirSync(join(dataDir, 'nats')).filter((f) => f.startsWith('nats-server.log.')).length).toBeGreaterThan(
      0,
    );
  }, 90_000);
});
