// Every kind of AuditEvent phi-broker writes, produced over one real stack (mTLS nats-server, broker, access desk,
// partner gateway, the real CLI as child processes) and checked against the official FHIR R4 JSON schema and the IHE
// BALP rules of test/helpers/balp.ts. Coverage is enumerated from src/audit/facts.ts (AUDIT_FACT_KINDS,
// OPERATOR_ACTIONS): a new kind, or a new operator action, fails here until this file produces it.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditEvent, Bundle, FhirResource } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { AUDIT_FACT_KINDS, OPERATOR_ACTIONS, type AuditFactKind } from '../../src/audit/facts.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { AuditEventJson } from '../../src/audit/event-json.js';
import { decodeRecord } from '../../src/audit/record.js';
import { renderEventJson } from '../../src/audit/render.js';
import type { StoredRecord } from '../../src/audit/verify.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { startSecurityLog } from '../../src/runtime/security-log.js';
import { BROKER_IDENTITY } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { balpProblems } from '../helpers/balp.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { startTestGateway } from '../helpers/gateway.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');
const PATIENT = 'Patient/Zq7731Balp';
const OPERATOR = 'dana.auditor';
const work = mkdtempSync(join(tmpdir(), 'phi-balp-'));
let stack: TestStack;
let desk: AccessDesk;
let gateway: Gateway;
const clients = new Map<string, PhiClient>();
let events: AuditEvent[] = [];
const records: StoredRecord[] = [];
let disclosureBundle: Bundle;

/** The real CLI as an operator runs it; the operator named by `--operator`, or by PHI_BROKER_OPERATOR with `env`. */
async function cli(args: readonly string[], how: 'flag' | 'env' = 'flag'): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    [CLI, ...(how === 'flag' ? ['--operator', OPERATOR] : []), ...args, '--data-dir', stack.config.dataDir],
    {
      env: {
        ...process.env,
        ...stack.env,
        PHI_BROKER_OPERATOR_IDENTITY: 'operator',
        ...(how === 'env' ? { PHI_BROKER_OPERATOR: OPERATOR } : {}),
      },
    },
  );
  return stdout;
}

function client(service: string): PhiClient {
  const c = clients.get(service);
  if (c === undefined) throw new Error(service);
  return c;
}

/** Which fact kind an event records, from its type and subtype (event.ts), or undefined for an unknown shape. */
function kindOf(e: AuditEvent): AuditFactKind | undefined {
  const sub = (system: string): string | undefined => e.subtype?.find((c) => c.system === system)?.code;
  const type = e.type.code;
  if (sub('urn:phi-broker:operator-action') !== undefined) return 'operator-action';
  const has = (system: string): boolean => (e.entity ?? []).some((x) => x.what?.identifier?.system === system);
  if (type === 'rest' && has('urn:phi-broker:oauth-client')) return 'partner-request';
  if (type === '110106' && has('urn:phi-broker:subscription')) return 'partner-notification';
  if (type === 'rest' && sub('http://hl7.org/fhir/restful-interaction') === 'create') {
    if ((e.entity ?? []).some((x) => x.what?.identifier?.system === 'urn:phi-broker:quarantine-record'))
      return 'quarantined';
    return e.outcome === '0' ? 'accepted' : 'rejected';
  }
  if (type === '110106') return e.outcome === '0' ? 'delivered' : 'withheld';
  if (type === '110100')
    return sub('http://dicom.nema.org/resources/ontology/DCM') === '110120' ? 'broker-start' : 'broker-stop';
  if (type === '110113') {
    if (sub('urn:phi-broker:alert-rule') !== undefined) return 'alert';
    if (sub('urn:phi-broker:security-incident') !== undefined) return 'security-incident';
    return 'catalog-loaded';
  }
  if (type === '110110') return sub('urn:phi-broker:access-step') === 'refused' ? 'access-refused' : 'access';
  if (type === '110114') return 'partner-token';
  return undefined;
}

function tokenRequest(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/auth/token`,
      { method: 'POST', ca, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end('grant_type=client_credentials');
  });
}

beforeAll(async () => {
  const rules = join(work, 'alert-rules.json');
  writeFileSync(rules, JSON.stringify({ rejections: { threshold: 1, windowMs: 60_000 } }));
  stack = await startTestStack({ config: { alertRulesFile: rules, gatewayPort: 0 } });
  const broker = stack.broker;
  if (broker === undefined) throw new Error('no broker');
  for (const s of ['registration', 'billing', 'ehr', 'notification', 'pharmacy', 'public-health', 'patient-portal'])
    clients.set(s, await stack.client(s));
  desk = await AccessDesk.start({
    nc: await stack.connectAs(BROKER_IDENTITY, 'desk'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    audit: broker.auditTrail,
    answerTimeoutMs: 2_000,
    retryIntervalMs: 0,
  });
  const tls = stack.nats.tls;
  if (tls === undefined) throw new Error('expected an mTLS stack');
  gateway = await startTestGateway(stack, 1, 'gw-balp');

  // Broker: accepted and delivered (and, to the external payer, a disclosure); rejected, quarantined, the alert.
  const id = PATIENT.slice('Patient/'.length);
  expect(
    (await client('registration').publish({ resourceType: 'Patient', id, name: [{ family: 'Balp' }] })).status,
  ).toBe('accepted');
  const coverage = {
    resourceType: 'Coverage',
    id: 'cov-balp-1',
    status: 'active',
    beneficiary: { reference: PATIENT },
    payor: [{ reference: 'Organization/payer-1' }],
  } as FhirResource;
  expect((await client('registration').publish(coverage)).status).toBe('accepted');
  const inspector = await stack.connect('forge');
  await inspector.jetstream().publish('phi.ingest.registration.Patient', new TextEncoder().encode('not an envelope'));
  await stack.logs.until((r) => r['event'] === 'audit.alert', 'the rejections alert');

  // Operator actions, each through the real CLI; a restriction then withholds a copy (withheld).
  const added = await cli(['consent', 'add', '--patient', PATIENT, '--deny-recipient', 'billing']);
  const consentId = /added (\S+)/.exec(added)?.[1] ?? '';
  await stack.logs.until((r) => r['event'] === 'consent.applied', 'the restriction applied');
  expect(
    (await client('registration').publish({ resourceType: 'Patient', id, name: [{ family: 'Balp2' }] })).status,
  ).toBe('accepted');
  await cli(['consent', 'revoke', consentId], 'env');
  const serving = await Promise.all(
    // pharmacy does not answer: the request stays partial, so it can be extended.
    ['registration', 'ehr', 'notification', 'public-health', 'billing'].map((s) =>
      client(s).onAccessRequest((ref) => [
        { resourceType: 'Patient', id: ref.slice('Patient/'.length) } as FhirResource,
      ]),
    ),
  );
  const request = JSON.parse(await cli(['access', 'request', '--patient', PATIENT, '--json'])) as { id: string };
  await cli(['access', 'extend', request.id, '--reason', 'records in off-site storage']);
  await cli(['access', 'export', request.id, '--out', join(work, 'export.json')]).catch(
    (e: { code?: number }) => expect(e.code).toBe(2), // partial: written all the same
  );
  for (const s of serving) await s.stop();
  // A requester asking about a request it did not create: refused (access-refused).
  await expect(client('patient-portal').accessStatus(request.id)).rejects.toMatchObject({
    code: 'E_ACCESS_NOT_ALLOWED',
  });
  const quarantined = JSON.parse((await cli(['quarantine', 'list', '--json'])).split('\n')[0] ?? '{}') as {
    id: string;
  };
  await cli(['quarantine', 'show', quarantined.id, '--decrypt']);
  await cli(['registry', 'show', '--patient', PATIENT], 'env');
  disclosureBundle = JSON.parse(await cli(['disclosures', '--patient', PATIENT, '--format', 'fhir'])) as Bundle;
  await cli(['audit', 'query', '--patient', PATIENT, '--json']);
  await cli(['audit', 'export', '--out', join(work, 'audit.json'), '--since', '1h']);

  // Partner gateway: a refused token request. nats-server refusals: its real log lines (a captured 2.9.10 log).
  expect(await tokenRequest(gateway.url, readFileSync(tls.ca.certFile, 'utf8'))).toBe(400);
  const incidents = startSecurityLog({
    file: join(ROOT, 'test/nats/fixtures/nats-server-2.9.10-security.log'),
    catalog: stack.catalog,
    trail: broker.auditTrail,
    metrics: broker.metrics,
    intervalMs: 60_000,
    logger: stack.logger,
  });
  await incidents.stop(); // reads the file to its end and records every open window
  await desk.stop();
  await gateway.stop();
  await broker.stop(); // broker-stop

  for await (const r of readAuditRecords(inspector)) {
    records.push(r);
    events.push(...(decodeRecord(r.data)?.events ?? []));
  }
  await inspector.close();
}, 240_000);

afterAll(async () => {
  await desk?.stop().catch(() => undefined);
  await gateway?.stop().catch(() => undefined);
  await stack?.stop();
});

describe('every AuditEvent kind the product writes', () => {
  it('each kind of src/audit/facts.ts was produced, and no event is of an unknown shape', () => {
    const kinds = new Set(events.map(kindOf));
    expect(kinds.has(undefined), 'an event of no known kind').toBe(false);
    // The gateway's FHIR exchange needs a partner's token and a rest-hook receiver: those two kinds are produced and
    // checked against the same rules (balpProblems, fhirSchemaErrors) by the gateway's own tests.
    const elsewhere: Partial<Record<AuditFactKind, string>> = {
      'partner-request': 'test/gateway/inbound.int.test.ts',
      'partner-notification': 'test/gateway/subscriptions.int.test.ts',
    };
    expect([...AUDIT_FACT_KINDS].filter((k) => !kinds.has(k) && elsewhere[k] === undefined)).toEqual([]);
    for (const file of Object.values(elsewhere))
      expect(readFileSync(join(ROOT, file), 'utf8')).toContain('balpProblems(');
    const actions = new Set(
      events.flatMap(
        (e) => e.subtype?.filter((c) => c.system === 'urn:phi-broker:operator-action').map((c) => c.code) ?? [],
      ),
    );
    expect(OPERATOR_ACTIONS.filter((a) => !actions.has(a))).toEqual([]);
  });

  it('rendered from the stored facts (record v3), each event is byte for byte what the v1 writer stored for the fact, id and time', () => {
    // The v1 writer's encoder (AuditEventJson: templates filled per event), one per chain as each trail keeps one.
    const writers = new Map<string, { json: AuditEventJson; at: number; id: string }>();
    let compared = 0;
    for (const r of records) {
      const record = decodeRecord(r.data);
      if (record?.checkpoint !== undefined) continue;
      expect(record?.v).toBe(3);
      const { chain, seq, source = {}, facts = [] } = record ?? {};
      if (chain === undefined || seq === undefined) throw new Error('not a record');
      let w = writers.get(chain);
      if (w === undefined) {
        const place = { at: 0, id: '' };
        const ctx = { instanceId: chain, ...source, now: () => place.at, newId: () => place.id };
        w = Object.assign(place, { json: new AuditEventJson(ctx) });
        writers.set(chain, w);
      }
      for (const [index, f] of facts.entries()) {
        w.at = f.at;
        w.id = f.id;
        expect(renderEventJson(f, { chain, seq, index, source })).toBe(w.json.json(f.fact));
        compared += 1;
      }
    }
    expect(compared).toBe(events.length);
    // The broker's, the gateway's and the operator commands' chains, with templates filled as the v1 writer did.
    expect(new Set([...writers.keys()].map((c) => c.split('.')[0])).size).toBeGreaterThanOrEqual(3);
    expect([...writers.values()].reduce((n, w) => n + w.json.filled, 0)).toBeGreaterThan(0);
  });

  it('every stored event is valid against the official FHIR R4 JSON schema', () => {
    expect(events.length).toBeGreaterThan(20);
    expect(events.flatMap((e) => fhirSchemaErrors(e).map((m) => `${kindOf(e) ?? '?'}: ${m}`))).toEqual([]);
  });

  it('every stored event meets the BALP rules (val-audit-source, Reference(Patient), network, the profiles it claims)', () => {
    expect(events.flatMap((e) => balpProblems(e).map((m) => `${kindOf(e) ?? '?'} ${e.id ?? ''}: ${m}`))).toEqual([]);
    // Accepted and delivered events claim their profiles (and the rule checker ran them).
    const claimed = new Set(events.flatMap((e) => e.meta?.profile ?? []));
    for (const p of ['PatientCreate', 'PrivacyDisclosure.Source', 'PatientUpdate', 'Read'])
      expect(claimed.has(`https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.${p}`), p).toBe(true);
    // A rejected create claims no profile whose outcome is fixed to success.
    for (const e of events.filter((x) => kindOf(x) === 'rejected')) expect(e.meta).toBeUndefined();
  });

  it('the accounting of disclosures (disclosures --format fhir) is schema-valid and BALP Privacy Disclosure', () => {
    const entries = disclosureBundle.entry ?? [];
    expect(entries.length).toBeGreaterThan(0);
    for (const { resource } of entries) {
      expect(fhirSchemaErrors(resource)).toEqual([]);
      expect(balpProblems(resource as AuditEvent)).toEqual([]);
    }
  });

  it('each CLI compliance action names the operator (a person, no network) and, where there is one, the patient', () => {
    const pseudonym = patientPseudonym(stack.secrets, PATIENT);
    const withPatient = new Set([
      'consent-add',
      'consent-revoke',
      'access-request',
      'access-extend',
      'access-export',
      'registry-show',
      'disclosures',
      'audit-query',
    ]);
    for (const action of OPERATOR_ACTIONS) {
      const e = events.find((x) =>
        x.subtype?.some((c) => c.system === 'urn:phi-broker:operator-action' && c.code === action),
      );
      expect(e, action).toBeDefined();
      const operator = e?.agent.find((a) => a.who?.identifier?.system === 'urn:phi-broker:operator');
      expect(operator, action).toMatchObject({
        who: { identifier: { value: OPERATOR } },
        requestor: true,
        altId: 'operator',
      });
      expect(operator?.network, action).toBeUndefined();
      const patient = e?.entity?.find((x) => x.role?.code === '1');
      if (withPatient.has(action))
        expect(patient?.what, action).toEqual({
          type: 'Patient',
          identifier: { system: 'urn:phi-broker:patient-pseudonym', value: pseudonym },
        });
    }
  });

  it('a revoked Consent records when it ended (provision.period.end), in its AuditEvent too', () => {
    const e = events.find((x) => x.subtype?.some((c) => c.code === 'consent-revoke'));
    const revoked = e?.entity?.flatMap((x) => x.detail ?? []).find((d) => d.type === 'revoked')?.valueString;
    expect(Date.parse(revoked ?? '')).not.toBeNaN();
  });

  it('a command whose AuditEvent cannot be stored fails and shows nothing (E_AUDIT_UNRECORDED)', async () => {
    // A retention longer than PHI_AUDIT has: the command's chain refuses to open on a weaker stream.
    const failed = await run(
      process.execPath,
      [CLI, 'registry', 'show', '--patient', PATIENT, '--data-dir', stack.config.dataDir],
      {
        env: { ...process.env, ...stack.env, PHI_BROKER_AUDIT_MAX_AGE_MS: String(10 * 365 * 24 * 3600 * 1000) },
      },
    ).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(failed).toMatchObject({ code: 1, stdout: '' });
    expect(failed?.stderr).toMatch(/^phi-broker: E_AUDIT_UNRECORDED: registry-show: /m);
  });

  it('the chains, the operator commands’ own included, verify (audit verify exits 0)', async () => {
    expect(events.some((e) => e.source.observer.identifier?.value?.startsWith('cli.'))).toBe(true);
    const out = await cli(['audit', 'verify']);
    expect(out).toMatch(/^ok: /m);
  });
});
