// The generated nats-server config and permissions (src/nats/server-config.ts, permissions.ts), checked against
// the catalog: every service confined to its own names, the broker without stream management, nats-server 2.9
// accepting the file (`nats-server -t`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { deliveryConsumer } from '../../src/wire/names.js';
import { deliveryDurables, natsPermissions } from '../../src/nats/permissions.js';
import { natsServerConfig } from '../../src/nats/server-config.js';
import { findNatsServerBinary } from '../../src/nats/server-binary.js';
import { natsUser, serviceIdentity } from '../../src/tls/identity.js';
import { issueAll, tlsLayout } from '../../src/tls/store.js';
import { ROOT } from '../helpers/stack.js';

const catalog = loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });
const services = [...catalog.services.keys()];
const perms = natsPermissions(catalog);
const TLS = { caFile: '/tls/ca.cert.pem', certFile: '/tls/server.cert.pem', keyFile: '/tls/server.key.pem' };

function subscribedTypes(service: string): string[] {
  return [...catalog.topics.values()]
    .filter((t) => t.subscribers.some((s) => s.service === service))
    .map((t) => t.resourceType);
}

const OPERATOR_AUDIT = [
  'phi.audit.cli.*',
  'phi.witness.audit.cli.*',
  '$JS.API.STREAM.MSG.GET.PHI_AUDIT',
  '$JS.API.DIRECT.GET.PHI_AUDIT',
  '$JS.API.STREAM.MSG.GET.PHI_AUDIT_WITNESS',
  '$JS.API.DIRECT.GET.PHI_AUDIT_WITNESS',
];

describe('natsPermissions', () => {
  it('one user per catalog service, plus the broker, the admin, the operator, the auditor and the gateway, each mapped from its certificate subject', () => {
    expect(perms.map((p) => p.user).sort()).toEqual(
      [
        ...services.map((s) => natsUser(serviceIdentity(s))),
        'CN=broker,OU=broker,O=phi-broker',
        'CN=admin,OU=admin,O=phi-broker',
        'CN=operator,OU=operator,O=phi-broker',
        'CN=auditor,OU=auditor,O=phi-broker',
        'CN=gateway,OU=gateway,O=phi-broker',
      ].sort(),
    );
  });

  it.each(services)(
    '%s: publishes only its own ingest subjects and binds, fetches and acks only its own durables, creating none',
    (service) => {
      const p = perms.find((x) => x.identity.kind === 'service' && x.identity.id === service);
      if (p === undefined) throw new Error('no permissions');
      const durables = deliveryDurables(catalog, service);
      expect(durables.map((d) => d.name).sort()).toEqual(
        subscribedTypes(service).length === 0
          ? []
          : [deliveryConsumer(service), ...subscribedTypes(service).map((t) => deliveryConsumer(service, t))].sort(),
      );
      const expected = [
        `phi.ingest.${service}.>`,
        '$JS.API.INFO',
        ...durables.flatMap((d) => [
          `$JS.API.CONSUMER.INFO.PHI_DELIVER.${d.name}`,
          `$JS.API.CONSUMER.MSG.NEXT.PHI_DELIVER.${d.name}`,
          `$JS.ACK.PHI_DELIVER.${d.name}.>`,
        ]),
        // Its own access-request subject only when the catalog lists it as an access requester (subjects/access.yaml).
        ...(catalog.access.requesters.includes(service) ? [`phi.request.access.${service}`] : []),
        // Its answers to the broker's access requests (replies.accessAnswers).
        `_INBOX.broker.answer.${service}.*`,
        // The key directory: bind and watch (an ordered consumer with flow control; docs/keys.md).
        '$JS.API.STREAM.INFO.KV_phi_keys',
        '$JS.API.CONSUMER.CREATE.KV_phi_keys',
        '$JS.API.CONSUMER.CREATE.KV_phi_keys.>',
        '$JS.FC.KV_phi_keys.>',
      ];
      expect([...p.publish.allow].sort()).toEqual(expected.sort());
      // phi.access.<self>.part.*: the one-off subjects it serves the parts of a large access answer on.
      expect([...p.subscribe.allow].sort()).toEqual(
        [
          `phi.receipt.${service}`,
          `phi.access.${service}`,
          `phi.access.${service}.part.*`,
          `_INBOX.${service}.>`,
        ].sort(),
      );
      expect(p.publish.deny).toEqual(
        expect.arrayContaining([
          '$JS.API.DIRECT.GET.>',
          '$JS.API.STREAM.MSG.GET.>',
          // Stream info and consumers on every stream but the key directory's.
          '$JS.API.STREAM.INFO.PHI_DELIVER',
          '$JS.API.STREAM.INFO.PHI_AUDIT',
          '$JS.API.STREAM.INFO.KV_phi_consent',
          '$JS.API.STREAM.INFO.OBJ_phi_access_answers',
          '$JS.API.CONSUMER.CREATE.PHI_DELIVER',
          '$JS.API.CONSUMER.CREATE.PHI_DELIVER.>',
          '$JS.API.CONSUMER.CREATE.KV_phi_registry.>',
          '$JS.FC.PHI_DELIVER.>',
          '$KV.>',
          '$JS.API.STREAM.LIST',
          '$JS.API.STREAM.DELETE.>',
          '$JS.API.STREAM.PURGE.>',
          '$JS.API.STREAM.UPDATE.>',
          '$JS.API.STREAM.MSG.DELETE.>',
          // Consumers are the admin's to create, update and delete (src/runtime/provision.ts).
          '$JS.API.CONSUMER.DURABLE.CREATE.>',
          '$JS.API.CONSUMER.DELETE.>',
          'phi.deliver.>',
          'phi.audit.>',
        ]),
      );
      // The only consumers it may create: ordered ones on the key directory.
      expect(p.publish.allow.filter((x) => /^\$JS\.API\.CONSUMER\.(CREATE|DURABLE|DELETE)/.test(x))).toEqual([
        '$JS.API.CONSUMER.CREATE.KV_phi_keys',
        '$JS.API.CONSUMER.CREATE.KV_phi_keys.>',
      ]);
      expect(p.publish.deny.filter((x) => x.includes('KV_phi_keys'))).toEqual([]);
      // It answers the broker's access requests on their reply subjects, and may publish nowhere else in an inbox.
      expect(p.publish.allow.filter((x) => x.startsWith('_INBOX.'))).toEqual([`_INBOX.broker.answer.${service}.*`]);
      // No token of any allowed subject names another service.
      for (const other of services.filter((s) => s !== service)) {
        for (const subject of [...p.publish.allow, ...p.subscribe.allow]) {
          const tokens = subject.split('.');
          expect(
            tokens.includes(other) || tokens.some((t) => t === `deliver-${other}` || t.startsWith(`deliver-${other}-`)),
            `${service}: ${subject} names ${other}`,
          ).toBe(false);
        }
      }
    },
  );

  it('the broker may not create, update, delete or purge streams, read with stream info on anything but its own, or publish ingest', () => {
    const b = perms.find((p) => p.identity.kind === 'broker');
    if (b === undefined) throw new Error('no broker');
    expect(
      b.publish.allow.filter((s) => /^\$JS\.API\.STREAM\.(CREATE|UPDATE|DELETE|PURGE|MSG\.DELETE)\b/.test(s)),
    ).toEqual([]);
    expect(b.publish.allow.filter((s) => s.startsWith('$JS.API.STREAM.INFO.')).sort()).toEqual(
      [
        'PHI_INGEST',
        'PHI_DELIVER',
        'PHI_QUARANTINE',
        'PHI_RECEIPTS',
        'PHI_AUDIT',
        'PHI_AUDIT_WITNESS',
        'PHI_DISCLOSURES',
        'KV_phi_seen',
        'KV_phi_registry',
        'KV_phi_access',
        'KV_phi_consent',
        'KV_phi_keys',
        'OBJ_phi_access_answers',
      ]
        .map((s) => `$JS.API.STREAM.INFO.${s}`)
        .sort(),
    );
    expect(b.publish.deny).toEqual(
      expect.arrayContaining([
        '$JS.API.STREAM.DELETE.>',
        '$JS.API.STREAM.PURGE.>',
        '$JS.API.STREAM.UPDATE.>',
        '$JS.API.CONSUMER.DELETE.>',
        'phi.ingest.>',
        'phi.control.access',
      ]),
    );
    // Every JetStream API allow names one stream: no family is open over all streams.
    for (const subject of b.publish.allow.filter((x) => x.startsWith('$JS.API.') && x !== '$JS.API.INFO')) {
      expect(subject, subject).toMatch(
        /^\$JS\.API\.(STREAM\.INFO|STREAM\.MSG\.GET|DIRECT\.GET|CONSUMER\.(INFO|CREATE|MSG\.NEXT))\.(PHI_[A-Z_]+|KV_phi_[a-z_]+|OBJ_phi_[a-z_]+)(\.|$)/,
      );
    }
    // Its subscribers' durables on PHI_DELIVER are provisioned by the admin: the broker checks (info) them only.
    expect(b.publish.allow.filter((x) => x.startsWith('$JS.API.CONSUMER.CREATE.PHI_DELIVER'))).toEqual([]);
    expect(b.publish.allow.filter((x) => x.startsWith('$JS.API.CONSUMER.INFO.PHI_DELIVER.')).sort()).toEqual(
      services
        .flatMap((s) => deliveryDurables(catalog, s))
        .map((d) => `$JS.API.CONSUMER.INFO.PHI_DELIVER.${d.name}`)
        .sort(),
    );
    // Ephemeral/ordered consumers (KV watch, keys) only on the three KV streams the broker watches or lists.
    expect(b.publish.allow.filter((x) => /^\$JS\.API\.CONSUMER\.CREATE\.[^.]+(\.>)?$/.test(x)).sort()).toEqual(
      ['KV_phi_consent', 'KV_phi_access', 'KV_phi_keys']
        .flatMap((st) => [`$JS.API.CONSUMER.CREATE.${st}`, `$JS.API.CONSUMER.CREATE.${st}.>`])
        .sort(),
    );
    expect(b.publish.allow).toEqual(
      expect.arrayContaining([
        'phi.audit.>',
        'phi.witness.audit.>',
        'phi.alert.>',
        'phi.disclosure.>',
        'phi.access.>',
        '$O.phi_access_answers.>',
        '$KV.phi_registry.>',
        '$KV.phi_access.>',
      ]),
    );
    // Restrictions are written by operators (admin) alone; the broker reads and watches them.
    expect(b.publish.allow.filter((x) => x.startsWith('$KV.')).sort()).toEqual([
      '$KV.phi_access.>',
      '$KV.phi_registry.>',
      '$KV.phi_seen.>',
    ]);
    expect(b.publish.deny).toContain('$KV.phi_consent.>');
    // The key directory is written by operators alone, signed by the operator root key (docs/keys.md).
    expect(b.publish.deny).toContain('$KV.phi_keys.>');
    expect(b.subscribe.allow).toEqual([
      '_INBOX.broker.>',
      'phi.control.access phi-broker',
      'phi.request.access.* phi-broker',
    ]);
    expect(b.publish.deny).toContain('phi.request.>');
    // It answers the operator commands and the requesters' access requests under their inboxes' `desk` replies only,
    // never into the rest of an inbox (JetStream API replies).
    expect(b.publish.allow.filter((x) => x.startsWith('_INBOX.')).sort()).toEqual(
      [
        '_INBOX._admin.desk.*',
        '_INBOX._operator.desk.*',
        ...catalog.access.requesters.map((s) => `_INBOX.${s}.desk.*`),
      ].sort(),
    );
  });

  it("access requests from the SDK: only the catalog's requesters may publish phi.request.access.<self>; the rest are denied all of phi.request", () => {
    expect(catalog.access.requesters).toEqual(['patient-portal']);
    for (const p of perms.filter((x) => x.identity.kind === 'service')) {
      const service = p.identity.id;
      const requester = catalog.access.requesters.includes(service);
      expect(
        p.publish.allow.filter((x) => x.startsWith('phi.request.')),
        service,
      ).toEqual(requester ? [`phi.request.access.${service}`] : []);
      expect(p.publish.deny.includes('phi.request.>'), service).toBe(!requester);
      // Nobody may subscribe to requests (another service's, or all): only the broker's queue group reads them.
      expect(p.subscribe.deny, service).toContain('phi.request.>');
      expect(
        p.subscribe.allow.some((x) => x.startsWith('phi.request')),
        service,
      ).toBe(false);
    }
  });

  it("the gateway: its five buckets, the audit chain, each partner's create-scope ingest subject and receipts, nothing of the broker's", () => {
    const g = perms.find((p) => p.identity.kind === 'gateway');
    expect(g?.inboxPrefix).toBe('_INBOX._gateway');
    expect(g?.publish.allow.filter((x) => x.startsWith('$KV.')).sort()).toEqual([
      '$KV.phi_gateway_events.>',
      '$KV.phi_gateway_jti.>',
      '$KV.phi_gateway_rate.>',
      '$KV.phi_gateway_requests.>',
      '$KV.phi_gateway_subscriptions.>',
    ]);
    expect(g?.publish.allow.filter((x) => x.startsWith('phi.ingest.'))).toEqual([
      'phi.ingest.partner-payer.ExplanationOfBenefit',
      'phi.ingest.partner-payer._raw',
    ]);
    expect([...(g?.subscribe.allow ?? [])].sort()).toEqual([
      '_INBOX._gateway.>',
      'phi.receipt.partner-payer',
      'phi.receipt.public-health',
    ]);
    expect(g?.publish.deny).toEqual(
      expect.arrayContaining(['$KV.phi_registry.>', 'phi.deliver.>', 'phi.control.access', '$KV.phi_keys.>']),
    );
    // It watches the key directory as services do: bind, an ordered consumer, its flow control; nothing else.
    expect(g?.publish.allow).toEqual(
      expect.arrayContaining([
        '$JS.API.STREAM.INFO.KV_phi_keys',
        '$JS.API.CONSUMER.CREATE.KV_phi_keys',
        '$JS.API.CONSUMER.CREATE.KV_phi_keys.>',
        '$JS.FC.KV_phi_keys.>',
      ]),
    );
    expect(g?.publish.deny).toEqual(
      expect.arrayContaining(['$JS.API.CONSUMER.CREATE.PHI_AUDIT', '$JS.API.CONSUMER.CREATE.KV_phi_gateway_jti']),
    );
    expect(g?.publish.deny).not.toContain('$JS.API.CONSUMER.CREATE.KV_phi_keys');
  });

  it('the admin has the JetStream API, consent writes, the key directory writes, the access commands and its own audit chains, and nothing else of phi.* (it runs nothing else)', () => {
    const a = perms.find((p) => p.identity.kind === 'admin');
    expect(a?.publish.allow).toEqual([
      '$JS.API.>',
      '$JS.FC.>',
      '$KV.phi_consent.>',
      '$KV.phi_keys.>',
      'phi.control.access',
      ...OPERATOR_AUDIT,
    ]);
    expect(a?.subscribe.allow).toEqual(['_INBOX._admin.>']);
  });

  it('the auditor reads PHI_AUDIT, PHI_DISCLOSURES, PHI_QUARANTINE and the registry, access, consent and key directory buckets, and writes only the audit record of its own reads', () => {
    const a = perms.find((p) => p.identity.kind === 'auditor');
    if (a === undefined) throw new Error('no auditor');
    expect(a.inboxPrefix).toBe('_INBOX._auditor');
    expect(a.subscribe.allow).toEqual(['_INBOX._auditor.>']);
    // Of phi.*, only the operator commands' own audit chains (phi.audit.cli.<id>), never a broker's chain …
    expect(a.publish.allow.filter((s) => s.startsWith('phi.'))).toEqual(['phi.audit.cli.*', 'phi.witness.audit.cli.*']);
    // … and nothing of KV or object store data subjects, acks, or the management API is allowed …
    for (const s of a.publish.allow.filter((x) => !x.startsWith('phi.')))
      expect(s, s).toMatch(
        /^\$JS\.(API\.(INFO|STREAM\.(NAMES|INFO\.|MSG\.GET\.)|DIRECT\.GET\.|CONSUMER\.(CREATE|INFO|MSG\.NEXT)\.)|FC\.)/,
      );
    // … and each allowed stream-scoped subject names one of the streams the read-only commands read.
    const streams = new Set([
      'PHI_AUDIT',
      'PHI_AUDIT_WITNESS',
      'PHI_DISCLOSURES',
      'PHI_QUARANTINE',
      'KV_phi_registry',
      'KV_phi_access',
      'KV_phi_consent',
      'KV_phi_keys',
      'OBJ_phi_access_answers',
    ]);
    for (const s of a.publish.allow.filter(
      (x) => x !== '$JS.API.INFO' && x !== '$JS.API.STREAM.NAMES' && !x.startsWith('phi.'),
    )) {
      const stream = s.startsWith('$JS.FC.')
        ? s.split('.')[2]
        : s
            .replace(
              /^\$JS\.API\.(STREAM\.INFO|STREAM\.MSG\.GET|DIRECT\.GET|CONSUMER\.CREATE|CONSUMER\.INFO|CONSUMER\.MSG\.NEXT)\./,
              '',
            )
            .split('.')[0];
      expect(streams.has(stream ?? ''), s).toBe(true);
    }
    for (const d of [
      'phi.ingest.>',
      'phi.deliver.>',
      'phi.control.access',
      'phi.access.>',
      'phi.request.>',
      'phi.disclosure.>',
      '$KV.>',
      '$O.>',
      '$JS.ACK.>',
      '$JS.API.STREAM.DELETE.>',
      '$JS.API.STREAM.PURGE.>',
      '$JS.API.STREAM.UPDATE.>',
      '$JS.API.CONSUMER.DELETE.>',
    ])
      expect(a.publish.deny).toContain(d);
  });
});

describe('the operator identity (routine operator commands)', () => {
  const op = perms.find((p) => p.identity.kind === 'operator');
  const auditor = perms.find((p) => p.identity.kind === 'auditor');
  if (op === undefined || auditor === undefined) throw new Error('no operator or auditor');

  it('reads what the auditor reads, and writes only restrictions, the key directory and the access commands', () => {
    expect(op.inboxPrefix).toBe('_INBOX._operator');
    expect(op.subscribe.allow).toEqual(['_INBOX._operator.>']);
    const extra = op.publish.allow.filter((s) => !auditor.publish.allow.includes(s));
    expect(extra.sort()).toEqual(['$KV.phi_consent.>', '$KV.phi_keys.>', 'phi.control.access']);
    expect(auditor.publish.allow.every((s) => op.publish.allow.includes(s))).toBe(true);
  });

  it('may not create, update, delete or purge a stream, delete a message or consumer, or write another bucket or phi subject', () => {
    for (const d of [
      '$JS.API.STREAM.CREATE.>',
      '$JS.API.STREAM.UPDATE.>',
      '$JS.API.STREAM.DELETE.>',
      '$JS.API.STREAM.PURGE.>',
      '$JS.API.STREAM.MSG.DELETE.>',
      '$JS.API.STREAM.RESTORE.>',
      '$JS.API.CONSUMER.DELETE.>',
      '$JS.API.CONSUMER.DURABLE.CREATE.>',
      '$JS.ACK.>',
      '$KV.phi_registry.>',
      '$KV.phi_access.>',
      '$KV.phi_seen.>',
      '$O.>',
      'phi.ingest.>',
      'phi.deliver.>',
      'phi.request.>',
    ])
      expect(op.publish.deny, d).toContain(d);
    // The audit streams: only the operator commands' own chains, never a broker's or gateway's (phi.audit.<id>).
    expect(op.publish.allow.filter((s) => s.startsWith('phi.audit') || s.startsWith('phi.witness'))).toEqual([
      'phi.audit.cli.*',
      'phi.witness.audit.cli.*',
    ]);
    // No allow reaches the management API (deny also wins, but an allow would be a mistake to find here).
    expect(
      op.publish.allow.filter((s) => /^\$JS\.API\.(STREAM\.(CREATE|UPDATE|DELETE|PURGE)|CONSUMER\.DELETE)/.test(s)),
    ).toEqual([]);
    expect(op.publish.deny).not.toContain('$KV.phi_consent.>');
    expect(op.publish.deny).not.toContain('phi.control.access');
  });
});

describe('natsServerConfig', () => {
  const text = natsServerConfig(catalog, { tls: TLS, storeDir: '/data/jetstream', host: '127.0.0.1', port: 4999 });

  it('one TLS listener with client certificates verified and mapped; no other listener; no anonymous user', () => {
    expect(text.match(/^listen: /gm)).toHaveLength(1);
    expect(text).toContain('listen: "127.0.0.1:4999"');
    expect(text).toMatch(
      /tls \{\n {2}cert_file: "\/tls\/server\.cert\.pem"\n {2}key_file: "\/tls\/server\.key\.pem"\n {2}ca_file: "\/tls\/ca\.cert\.pem"\n {2}verify_and_map: true\n/,
    );
    for (const key of [
      'no_auth_user',
      'http',
      'https',
      'http_port',
      'cluster',
      'leafnodes',
      'gateway',
      'websocket',
      'mqtt',
      'accounts',
      // Replies are allowed by subject: nats-server would track every pulled message's reply for such a user.
      'allow_responses',
    ]) {
      expect(text, key).not.toMatch(new RegExp(`^\\s*${key}\\s*[:{=]`, 'm'));
    }
    expect(text).toContain('store_dir: "/data/jetstream"');
    expect(text.match(/^\s+user: /gm)).toHaveLength(services.length + 5);
  });

  it('nats-server 2.9 accepts it with real certificates (`nats-server -t` exits 0)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phi-broker-conf-'));
    try {
      const layout = tlsLayout(join(dir, 'tls'));
      await issueAll(layout, services, { now: Date.now(), createCaIfMissing: true });
      const file = join(dir, 'nats.conf');
      const tls = { caFile: layout.ca.certFile, certFile: layout.server.certFile, keyFile: layout.server.keyFile };
      writeFileSync(file, natsServerConfig(catalog, { tls, storeDir: join(dir, 'js'), host: '127.0.0.1', port: 4999 }));
      const r = spawnSync(findNatsServerBinary(), ['-t', '-c', file], { encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`).toContain('is valid');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
