// mTLS-only NATS running the config `phi-broker nats-config` generates (src/nats/server-config.ts): who is
// refused at connect, what each identity is refused once connected (each test observes the server's own
// permission error), and the positive path — publisher, broker and subscriber all over mTLS with exactly these
// permissions deliver a message end to end (so the permissions are not too narrow).
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { AckPolicy, connect, type Msg, type NatsConnection, type NatsError } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { ensureBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { readServiceKeys } from '../../src/runtime/key-files.js';
import { createLogger } from '../../src/log/log.js';
import { type NatsTlsFiles } from '../../src/nats/connect-options.js';
import { KV_BUCKETS, OBJECT_STORES, STREAMS, replies, subjects } from '../../src/wire/names.js';
import { RegistryStore } from '../../src/registry/store.js';
import { PhiClient } from '../../src/sdk/client.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { createCa, issueClientCertificate, type IssuedCertificate } from '../../src/tls/certificates.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { readCa } from '../../src/tls/store.js';
import { publishDenied, startMtlsStack, type MtlsStack } from '../helpers/mtls.js';
import { LogCapture, Waiter } from '../helpers/stack.js';

let stack: MtlsStack;
const logs = new LogCapture();
const logger = createLogger({ level: 'debug', destination: logs });
const clients: PhiClient[] = [];

/** A stray certificate written beside the real ones (another CA's, an expired one, a removed service's). */
function writeStray(name: string, cert: IssuedCertificate): NatsTlsFiles {
  const base = join(stack.dir, 'stray', name);
  writeFileSync(`${base}.cert.pem`, cert.certPem);
  writeFileSync(`${base}.key.pem`, cert.keyPem, { mode: 0o600 });
  return { caFile: stack.layout.ca.certFile, certFile: `${base}.cert.pem`, keyFile: `${base}.key.pem` };
}

const logWaiter = new Waiter();
/** Resolves with the server's log since `from` once it matches `pattern` (the server logs, then closes, asynchronously). */
async function serverLogged(from: number, pattern: RegExp): Promise<string> {
  await logWaiter.until(() => pattern.test(stack.log().slice(from)), 10_000, `server log ${pattern}`);
  return stack.log().slice(from);
}
const serverLogSize = (): number => stack.log().length;

let brokerStartLog = '';
let strays: { otherCa: NatsTlsFiles; expired: NatsTlsFiles; removed: NatsTlsFiles };

const connectAs = (identity: Parameters<MtlsStack['connectAs']>[0]): Promise<NatsConnection> =>
  stack.connectAs(identity);

async function connectFails(options: Parameters<typeof connect>[0]): Promise<NatsError> {
  const err = await connect({ ...options, maxReconnectAttempts: 0, reconnect: false, timeout: 5_000 }).then(
    async (nc) => {
      await nc.close();
      throw new Error('the connection was accepted');
    },
    (e: unknown) => e as NatsError,
  );
  return err;
}

beforeAll(async () => {
  // The server's log tells why it refused a connection; the tests read it.
  stack = await startMtlsStack(() => logWaiter.signal());
  mkdirSync(join(stack.dir, 'stray'));
  const now = Date.now();
  const ca = readCa(stack.layout);
  strays = {
    otherCa: writeStray(
      'other-ca',
      await issueClientCertificate(
        await createCa({ now, lifetimeMs: 86_400_000 }, 'another CA'),
        serviceIdentity('billing'),
        { now, lifetimeMs: 3_600_000 },
      ),
    ),
    expired: writeStray(
      'expired',
      await issueClientCertificate(ca, serviceIdentity('billing'), {
        now: now - 2 * 86_400_000,
        lifetimeMs: 3_600_000,
      }),
    ),
    removed: writeStray(
      'removed',
      await issueClientCertificate(ca, serviceIdentity('retired-service'), { now, lifetimeMs: 3_600_000 }),
    ),
  };
  // The admin provisioned every stream, bucket and object store (startMtlsStack); the broker starts under its own,
  // narrower identity, finds them as configured and changes none (it may not).
  await stack.startBroker(logger);
  brokerStartLog = stack.log();
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await stack?.stop();
});

describe('refused at connect', () => {
  it('a plaintext client: no TLS handshake, no PONG — the server closes the connection', async () => {
    const socket = tcpConnect(stack.server.port, '127.0.0.1');
    let received = '';
    let sent = false;
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (!sent && received.startsWith('INFO ') && received.includes('\r\n')) {
        sent = true;
        socket.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"plaintext"}\r\nPING\r\n');
      }
    });
    const before = serverLogSize();
    await closed;
    expect(sent).toBe(true);
    const info = JSON.parse(received.slice(5, received.indexOf('\r\n'))) as {
      tls_required?: boolean;
      tls_verify?: boolean;
    };
    expect(info.tls_required).toBe(true);
    expect(info.tls_verify).toBe(true);
    expect(received.slice(received.indexOf('\r\n') + 2)).toBe(''); // nothing after INFO: no PONG, no +OK
    await serverLogged(before, /TLS handshake error/);
  });

  it.each([
    [
      'no client certificate',
      () => ({ caFile: stack.layout.ca.certFile }),
      /didn't provide a certificate|certificate required/,
    ],
    ['a certificate from another CA', () => strays.otherCa, /certificate signed by unknown authority/],
    ['an expired certificate', () => strays.expired, /certificate has expired/],
  ])('%s: the TLS handshake fails, for that reason', async (_name, tls, reason) => {
    const before = serverLogSize();
    await connectFails({ servers: stack.server.url, tls: { ...tls() } });
    await serverLogged(before, reason);
  });

  it('TLS 1.1 with a valid certificate: the server refuses the protocol version (TLS 1.2 is the minimum)', async () => {
    const before = serverLogSize();
    const files = stack.layout.identity(serviceIdentity('billing'));
    // Node's OpenSSL offers TLS 1.1 only at security level 0; the refusal must come from the server.
    await connectFails({
      servers: stack.server.url,
      tls: { ...files, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as never,
    });
    await serverLogged(before, /TLS handshake error.*(protocol version|unsupported versions)/);
  });

  it('a service removed from the catalog: a valid certificate from the CA, but no user maps to it', async () => {
    const before = serverLogSize();
    const err = await connectFails({ servers: stack.server.url, tls: { ...strays.removed } });
    expect(err.code).toBe('AUTHORIZATION_VIOLATION');
    await serverLogged(before, /authentication error/);
  });

  it('a catalog service with its own certificate is accepted (the refusals above are not blanket)', async () => {
    const nc = await connectAs(serviceIdentity('billing'));
    expect(nc.info?.tls_required).toBe(true);
    await nc.flush();
  });
});

/**
 * The server's `Permissions Violation for Subscription to "<subject>"`, delivered to the subscription. The server
 * answers SUB before the PING of the flush that follows, so once the flush resolves the verdict is in.
 */
async function subscribeDenied(nc: NatsConnection, subject: string): Promise<void> {
  const errors: NatsError[] = [];
  nc.subscribe(subject, {
    callback: (err) =>
      errors.push(err ?? (Object.assign(new Error('a message arrived'), { code: 'MESSAGE' }) as NatsError)),
  });
  await nc.flush();
  expect(errors.map((e) => [e.code, e.permissionContext])).toEqual([
    ['PERMISSIONS_VIOLATION', { operation: 'subscription', subject }],
  ]);
}

const req = (nc: NatsConnection, subject: string, body: unknown = {}): Promise<unknown> =>
  nc.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeout: 5_000 });

describe('service A (notification) is confined to its own subjects', () => {
  let a: NatsConnection;
  beforeAll(async () => {
    a = await connectAs(serviceIdentity('notification'));
  });

  it("cannot subscribe to B's (billing's) deliveries, nor to its own delivery subjects directly", async () => {
    await subscribeDenied(a, 'phi.deliver.billing.>');
    await subscribeDenied(a, 'phi.deliver.notification.Patient');
    await subscribeDenied(a, 'phi.receipt.billing');
    await subscribeDenied(a, '_INBOX.billing.>');
  });

  it("cannot create or read B's consumer (info, next message)", async () => {
    const jsm = await a.jetstreamManager();
    await publishDenied(
      jsm.consumers.add(STREAMS.deliver, {
        durable_name: 'deliver-billing',
        filter_subject: 'phi.deliver.billing.>',
        ack_policy: AckPolicy.Explicit,
      }),
      '$JS.API.CONSUMER.CREATE.PHI_DELIVER.deliver-billing.phi.deliver.billing.>',
    );
    await publishDenied(
      jsm.consumers.info(STREAMS.deliver, 'deliver-billing'),
      '$JS.API.CONSUMER.INFO.PHI_DELIVER.deliver-billing',
    );
    await publishDenied(
      req(a, '$JS.API.CONSUMER.MSG.NEXT.PHI_DELIVER.deliver-billing', { batch: 1 }),
      '$JS.API.CONSUMER.MSG.NEXT.PHI_DELIVER.deliver-billing',
    );
    await publishDenied(
      req(a, '$JS.API.CONSUMER.DURABLE.CREATE.PHI_DELIVER.deliver-billing'),
      '$JS.API.CONSUMER.DURABLE.CREATE.PHI_DELIVER.deliver-billing',
    );
  });

  it('cannot create a consumer on PHI_DELIVER with another filter, with none, or an ephemeral one', async () => {
    const jsm = await a.jetstreamManager();
    await publishDenied(
      jsm.consumers.add(STREAMS.deliver, {
        durable_name: 'deliver-notification',
        filter_subject: 'phi.deliver.billing.>',
        ack_policy: AckPolicy.Explicit,
      }),
      '$JS.API.CONSUMER.CREATE.PHI_DELIVER.deliver-notification.phi.deliver.billing.>',
    );
    await publishDenied(
      jsm.consumers.add(STREAMS.deliver, { durable_name: 'deliver-notification', ack_policy: AckPolicy.Explicit }),
      '$JS.API.CONSUMER.CREATE.PHI_DELIVER.deliver-notification',
    );
    await publishDenied(
      req(a, '$JS.API.CONSUMER.CREATE.PHI_DELIVER', {
        stream_name: STREAMS.deliver,
        config: { ack_policy: 'explicit' },
      }),
      '$JS.API.CONSUMER.CREATE.PHI_DELIVER',
    );
  });

  it('cannot create, update or delete its own consumers: refused by nats-server, the consumer unchanged', async () => {
    const jsm = await a.jetstreamManager();
    const own = 'deliver-notification';
    const filter = 'phi.deliver.notification.>';
    // A new durable with its own filter (the create form nats.js 2.29 sends for a filtered durable).
    await publishDenied(
      jsm.consumers.add(STREAMS.deliver, {
        durable_name: 'deliver-notification-extra',
        filter_subject: filter,
        ack_policy: AckPolicy.Explicit,
      }),
      `$JS.API.CONSUMER.CREATE.PHI_DELIVER.deliver-notification-extra.${filter}`,
    );
    // Its own durable turned into a push consumer aimed at the broker's command subject or another's receipts:
    // every create/update form the server answers.
    const push = (deliver: string) => ({
      stream_name: STREAMS.deliver,
      config: { durable_name: own, filter_subject: filter, ack_policy: 'explicit', deliver_subject: deliver },
    });
    for (const [subject, deliver] of <[string, string][]>[
      [`$JS.API.CONSUMER.CREATE.PHI_DELIVER.${own}.${filter}`, 'phi.control.access'],
      [`$JS.API.CONSUMER.CREATE.PHI_DELIVER.${own}`, 'phi.receipt.billing'],
      [`$JS.API.CONSUMER.CREATE.PHI_DELIVER`, 'phi.control.access'],
      [`$JS.API.CONSUMER.DURABLE.CREATE.PHI_DELIVER.${own}`, 'phi.control.access'],
    ]) {
      await publishDenied(req(a, subject, push(deliver)), subject);
    }
    await publishDenied(
      jsm.consumers.update(STREAMS.deliver, own, { deliver_subject: 'phi.control.access' } as never),
      `$JS.API.CONSUMER.CREATE.PHI_DELIVER.${own}.${filter}`,
    );
    await publishDenied(jsm.consumers.delete(STREAMS.deliver, own), `$JS.API.CONSUMER.DELETE.PHI_DELIVER.${own}`);
    // What it may do: bind (consumer info) to its own.
    expect((await jsm.consumers.info(STREAMS.deliver, own)).name).toBe(own);
    const admin = await (await connectAs(ADMIN_IDENTITY)).jetstreamManager();
    const info = await admin.consumers.info(STREAMS.deliver, own);
    expect(info.config.deliver_subject).toBeUndefined();
    expect(info.config.filter_subject).toBe(filter);
    await expect(admin.consumers.info(STREAMS.deliver, 'deliver-notification-extra')).rejects.toThrow(/not found/i);
  });

  it("cannot publish on B's ingest subject, nor on delivery, receipt, quarantine or audit subjects", async () => {
    const js = a.jetstream();
    const bytes = new TextEncoder().encode('{}');
    for (const subject of [
      'phi.ingest.billing.Claim',
      'phi.deliver.notification.Patient',
      'phi.deliver.billing.Patient',
      'phi.receipt.registration',
      'phi.quarantine.notification',
      'phi.audit.x',
    ]) {
      await publishDenied(js.publish(subject, bytes), subject);
    }
  });

  it.each([
    STREAMS.quarantine,
    STREAMS.audit,
    STREAMS.disclosures,
    STREAMS.deliver,
    'KV_phi_seen',
    `KV_${KV_BUCKETS.consent}`,
    `KV_${KV_BUCKETS.registry}`,
    `KV_${KV_BUCKETS.access}`,
    `OBJ_${OBJECT_STORES.accessAnswers}`,
  ])(
    'cannot read %s: stream info, direct get, message get, a consumer of its own (named or ephemeral)',
    async (stream) => {
      await publishDenied(req(a, `$JS.API.STREAM.INFO.${stream}`), `$JS.API.STREAM.INFO.${stream}`);
      await publishDenied(req(a, `$JS.API.DIRECT.GET.${stream}`, { seq: 1 }), `$JS.API.DIRECT.GET.${stream}`);
      await publishDenied(req(a, `$JS.API.STREAM.MSG.GET.${stream}`, { seq: 1 }), `$JS.API.STREAM.MSG.GET.${stream}`);
      const jsm = await a.jetstreamManager();
      await publishDenied(
        jsm.consumers.add(stream, { durable_name: 'peek', ack_policy: AckPolicy.None }),
        `$JS.API.CONSUMER.CREATE.${stream}.peek`,
      );
      await publishDenied(
        req(a, `$JS.API.CONSUMER.CREATE.${stream}`, {
          stream_name: stream,
          config: { ack_policy: 'none', deliver_subject: '_INBOX.notification.peek' },
        }),
        `$JS.API.CONSUMER.CREATE.${stream}`,
      );
    },
  );

  it('cannot use the KV buckets or the object store through the client views (get, put)', async () => {
    const js = a.jetstream();
    // Binding skips the stream-info call, so each operation is refused on its own subject.
    const registry = await js.views.kv(KV_BUCKETS.registry, { bindOnly: true, allow_direct: true });
    await publishDenied(
      registry.get('any'),
      `$JS.API.DIRECT.GET.KV_${KV_BUCKETS.registry}.$KV.${KV_BUCKETS.registry}.any`,
    );
    for (const bucket of [KV_BUCKETS.consent, KV_BUCKETS.registry, KV_BUCKETS.access]) {
      await publishDenied(js.publish(`$KV.${bucket}.x`, new Uint8Array(1)), `$KV.${bucket}.x`);
    }
    // nats.js swallows the refused stream info of views.os; reading an object then is refused on its own subject.
    const answers = await js.views.os(OBJECT_STORES.accessAnswers);
    await publishDenied(answers.getBlob('x'), `$JS.API.STREAM.MSG.GET.OBJ_${OBJECT_STORES.accessAnswers}`);
    await publishDenied(
      js.publish(`$O.${OBJECT_STORES.accessAnswers}.M.x`, new Uint8Array(1)),
      `$O.${OBJECT_STORES.accessAnswers}.M.x`,
    );
  });

  it('cannot publish on the audit chain, alerts, disclosures, access requests (answer parts included) or the access control subject', async () => {
    const bytes = new TextEncoder().encode('{}');
    const billingPart = subjects.accessPart('billing', '0123456789abcdef0123456789abcdef');
    for (const subject of ['phi.audit.x', 'phi.disclosure.x.notification', 'phi.access.billing'])
      await publishDenied(a.jetstream().publish(subject, bytes), subject);
    for (const subject of ['phi.control.access', 'phi.access.billing', billingPart])
      await publishDenied(a.request(subject, bytes, { timeout: 5_000 }), subject);
  });

  it("answers only the broker's requests to it: not another service's, nor into the broker's or an operator's inbox", async () => {
    const bytes = new TextEncoder().encode('{}');
    const nonce = '0123456789abcdef0123456789abcdef';
    for (const subject of [
      replies.accessAnswer('billing', nonce),
      // The form of the broker's JetStream replies (nats.js request inbox): a forged publish acknowledgement.
      '_INBOX.broker.JS3hOaJ6rHhzGqaHkRXVKx.7',
      replies.desk('_INBOX._operator', nonce),
    ])
      await publishDenied(a.request(subject, bytes, { timeout: 5_000 }), subject);
  });

  it("may subscribe to its own phi.access.<self> and its answer parts, not to another service's, nor to the control subject, alerts, audit or disclosures", async () => {
    const own = a.subscribe('phi.access.notification');
    const ownPart = a.subscribe(subjects.accessPart('notification', '0123456789abcdef0123456789abcdef'));
    await a.flush();
    expect(own.isClosed() || ownPart.isClosed()).toBe(false);
    own.unsubscribe();
    ownPart.unsubscribe();
    for (const subject of [
      'phi.access.billing',
      'phi.access.>',
      subjects.accessPart('billing', '0123456789abcdef0123456789abcdef'),
      'phi.access.billing.part.*',
      'phi.access.notification.>',
      'phi.control.access',
      'phi.alert.>',
      'phi.audit.>',
      'phi.disclosure.>',
      `$KV.${KV_BUCKETS.consent}.>`,
      `$O.${OBJECT_STORES.accessAnswers}.>`,
    ]) {
      await subscribeDenied(a, subject);
    }
  });

  it('cannot list streams or consumers, nor get stream info', async () => {
    const jsm = await a.jetstreamManager();
    await publishDenied(jsm.streams.list().next(), '$JS.API.STREAM.LIST');
    await publishDenied(jsm.streams.names().next(), '$JS.API.STREAM.NAMES');
    await publishDenied(jsm.streams.info(STREAMS.deliver), `$JS.API.STREAM.INFO.${STREAMS.deliver}`);
    await publishDenied(jsm.streams.info(STREAMS.quarantine), `$JS.API.STREAM.INFO.${STREAMS.quarantine}`);
    await publishDenied(jsm.consumers.list(STREAMS.deliver).next(), `$JS.API.CONSUMER.LIST.${STREAMS.deliver}`);
  });

  it('cannot delete, purge or update a stream, or delete a message or a consumer', async () => {
    const jsm = await a.jetstreamManager();
    await publishDenied(jsm.streams.delete(STREAMS.deliver), `$JS.API.STREAM.DELETE.${STREAMS.deliver}`);
    await publishDenied(jsm.streams.purge(STREAMS.quarantine), `$JS.API.STREAM.PURGE.${STREAMS.quarantine}`);
    await publishDenied(
      req(a, `$JS.API.STREAM.UPDATE.${STREAMS.audit}`, { name: STREAMS.audit, subjects: ['phi.audit.>'], max_age: 1 }),
      `$JS.API.STREAM.UPDATE.${STREAMS.audit}`,
    );
    await publishDenied(jsm.streams.deleteMessage(STREAMS.audit, 1), `$JS.API.STREAM.MSG.DELETE.${STREAMS.audit}`);
    await publishDenied(
      jsm.consumers.delete(STREAMS.deliver, 'deliver-notification'),
      '$JS.API.CONSUMER.DELETE.PHI_DELIVER.deliver-notification',
    );
  });
});

describe('the broker identity gets what the broker needs and no more', () => {
  it('cannot delete, purge or update streams, nor publish as a service', async () => {
    const b = await connectAs(BROKER_IDENTITY);
    const jsm = await b.jetstreamManager();
    await publishDenied(jsm.streams.delete(STREAMS.audit), `$JS.API.STREAM.DELETE.${STREAMS.audit}`);
    await publishDenied(jsm.streams.purge(STREAMS.quarantine), `$JS.API.STREAM.PURGE.${STREAMS.quarantine}`);
    await publishDenied(
      req(b, `$JS.API.STREAM.UPDATE.${STREAMS.audit}`, { name: STREAMS.audit, subjects: ['phi.audit.>'], max_age: 1 }),
      `$JS.API.STREAM.UPDATE.${STREAMS.audit}`,
    );
    await publishDenied(
      jsm.streams.deleteMessage(STREAMS.quarantine, 1),
      `$JS.API.STREAM.MSG.DELETE.${STREAMS.quarantine}`,
    );
    await publishDenied(
      b.jetstream().publish('phi.ingest.registration.Patient', new Uint8Array(1)),
      'phi.ingest.registration.Patient',
    );
  });

  it('cannot create, update or delete the new streams and buckets, nor read streams through an ephemeral consumer beyond its buckets', async () => {
    const b = await connectAs(BROKER_IDENTITY);
    const jsm = await b.jetstreamManager();
    await publishDenied(
      jsm.streams.add({ name: STREAMS.audit, subjects: ['phi.audit.>'] }),
      `$JS.API.STREAM.CREATE.${STREAMS.audit}`,
    );
    await publishDenied(
      req(b, `$JS.API.STREAM.UPDATE.${STREAMS.disclosures}`, { name: STREAMS.disclosures, max_age: 1 }),
      `$JS.API.STREAM.UPDATE.${STREAMS.disclosures}`,
    );
    await publishDenied(
      jsm.streams.delete(`KV_${KV_BUCKETS.registry}`),
      `$JS.API.STREAM.DELETE.KV_${KV_BUCKETS.registry}`,
    );
    await publishDenied(
      jsm.streams.purge(`OBJ_${OBJECT_STORES.accessAnswers}`),
      `$JS.API.STREAM.PURGE.OBJ_${OBJECT_STORES.accessAnswers}`,
    );
    await publishDenied(
      req(b, `$JS.API.CONSUMER.CREATE.${STREAMS.deliver}`, {
        stream_name: STREAMS.deliver,
        config: { ack_policy: 'none', deliver_subject: '_INBOX.broker.peek' },
      }),
      `$JS.API.CONSUMER.CREATE.${STREAMS.deliver}`,
    );
    await publishDenied(b.request('phi.control.access', new Uint8Array(1), { timeout: 5_000 }), 'phi.control.access');
  });

  it('reads and watches the restrictions (KV phi_consent) but cannot write them: only operators (admin) add or revoke', async () => {
    const b = await connectAs(BROKER_IDENTITY);
    const consent = await b.jetstream().views.kv(KV_BUCKETS.consent, { bindOnly: true, allow_direct: true });
    await expect(consent.get('absent')).resolves.toBeNull();
    await publishDenied(consent.put('k', new Uint8Array(1)), `$KV.${KV_BUCKETS.consent}.k`);
    await publishDenied(consent.delete('k'), `$KV.${KV_BUCKETS.consent}.k`);
    const admin = await (
      await connectAs(ADMIN_IDENTITY)
    )
      .jetstream()
      .views.kv(KV_BUCKETS.consent, { bindOnly: true, allow_direct: true });
    const rev = await admin.put('k', new Uint8Array(1));
    expect((await consent.get('k'))?.revision).toBe(rev);
    await admin.purge('k');
  });

  it("subscribes to phi.control.access only in the brokers' queue group", async () => {
    const b = await connectAs(BROKER_IDENTITY);
    const errors: NatsError[] = [];
    b.subscribe('phi.control.access', { queue: 'phi-broker', callback: (err) => err && errors.push(err) });
    await b.flush();
    expect(errors).toEqual([]);
    await subscribeDenied(b, 'phi.control.access');
  });

  it('the admin identity manages streams (the one identity that may)', async () => {
    const admin = await connectAs(ADMIN_IDENTITY);
    const jsm = await admin.jetstreamManager();
    const info = await jsm.streams.info(STREAMS.audit);
    expect(info.config.deny_delete && info.config.deny_purge).toBe(true);
    const names: string[] = [];
    for await (const n of jsm.streams.names()) names.push(n);
    expect(names.sort()).toEqual(
      [
        STREAMS.ingest,
        STREAMS.deliver,
        STREAMS.quarantine,
        STREAMS.receipts,
        STREAMS.audit,
        STREAMS.auditWitness,
        STREAMS.disclosures,
        ...Object.values(KV_BUCKETS).map((b) => `KV_${b}`),
        `OBJ_${OBJECT_STORES.accessAnswers}`,
      ].sort(),
    );
  });
});

/** An SDK client of `service` over mTLS as its own identity (closed after the file). */
async function serviceClient(service: string): Promise<PhiClient> {
  const c = await stack.connectClient(service, logger);
  clients.push(c);
  return c;
}

describe('the positive path: publisher, broker and subscriber over mTLS with exactly these permissions', () => {
  it('the broker started (checking every stream, bucket and object store; its consent watch) without one refusal', () => {
    expect(brokerStartLog).not.toMatch(/Violation/);
  });

  it('registration publishes a Patient; notification receives its projection; the receipt says accepted', async () => {
    const logFrom = serverLogSize();
    const notification = await serviceClient('notification');
    const registration = await serviceClient('registration');
    let resolveDelivery: (v: { resource: Record<string, unknown>; publisher: string }) => void = () => undefined;
    const delivered = new Promise<{ resource: Record<string, unknown>; publisher: string }>((resolve) => {
      resolveDelivery = resolve;
    });
    // The type-specific durable, provisioned by the admin: the SDK binds to it (info), fetches and acks.
    const sub = await notification.subscribe('Patient', ({ resource, provenance }) => {
      resolveDelivery({ resource: resource as unknown as Record<string, unknown>, publisher: provenance.publisher });
    });
    const result = await registration.publish({
      resourceType: 'Patient',
      id: 'p-mtls-1',
      name: [{ family: 'Quillfeather', given: ['Orsolya'] }],
      birthDate: '1961-04-09',
      telecom: [{ system: 'phone', value: '555-0142-7788' }],
    });
    expect(result.status).toBe('accepted');
    const d = await delivered;
    expect(d.publisher).toBe('registration');
    expect(d.resource['name']).toEqual([{ family: 'Quillfeather', given: ['Orsolya'] }]);
    expect(d.resource['birthDate']).toBeUndefined(); // notification's minimum-necessary profile
    expect(logs.text()).not.toContain('Quillfeather');
    // Acknowledged through $JS.ACK.PHI_DELIVER.deliver-notification-Patient.> (stop() waits for the server to take it).
    await sub.stop();
    const admin = await connectAs(ADMIN_IDENTITY);
    const consumer = await (
      await admin.jetstreamManager()
    ).consumers.info(STREAMS.deliver, 'deliver-notification-Patient');
    expect(consumer.delivered.consumer_seq).toBeGreaterThanOrEqual(1);
    expect(consumer.ack_floor.consumer_seq).toBe(consumer.delivered.consumer_seq);
    expect(consumer.num_ack_pending).toBe(0);
    // nats-server logs every refusal as "Publish Violation" / "Subscription Violation": none on this path.
    expect(stack.log().slice(logFrom)).not.toMatch(/Violation/);
    // The broker recorded the patient in the registry (KV phi_registry, compare-and-set) and audited the
    // delivery on its own chain in PHI_AUDIT, all under the broker identity.
    const registry = await RegistryStore.open(admin);
    const keys: string[] = [];
    for await (const k of await registry.kv.keys()) keys.push(k);
    expect(keys.length).toBeGreaterThan(0);
    const audit = await (
      await admin.jetstreamManager()
    ).streams.info(STREAMS.audit, { subjects_filter: 'phi.audit.>' });
    expect(Object.keys(audit.state.subjects ?? {})).toHaveLength(1); // the broker's one chain, phi.audit.<instance>
    expect(audit.state.messages).toBeGreaterThan(0);
  });

  it("a publisher cannot answer the broker's store request of its receipt (every receipt reaches it with that reply subject)", async () => {
    const raw = await connectAs(serviceIdentity('registration'));
    const receipts = raw.subscribe(subjects.receipt('registration'), { max: 1 });
    await raw.flush();
    const registration = await serviceClient('registration');
    const result = await registration.publish({ resourceType: 'Patient', id: 'p-mtls-receipt' });
    expect(result.status).toBe('accepted');
    const { value: receipt } = await receipts[Symbol.asyncIterator]().next();
    const reply = (receipt as Msg | undefined)?.reply ?? '';
    expect(reply).toMatch(/^_INBOX\.broker\./);
    await publishDenied(raw.request(reply, new TextEncoder().encode('{"stream":"PHI_RECEIPTS","seq":1}')), reply);
  });

  it('a subscriber whose consumer was not provisioned gets E_SETUP_MISSING naming it; nats-provision creates it', async () => {
    const admin = await connectAs(ADMIN_IDENTITY);
    const jsm = await admin.jetstreamManager();
    expect(await jsm.consumers.delete(STREAMS.deliver, 'deliver-partner-payer-Claim')).toBe(true);
    const payer = await serviceClient('partner-payer');
    const err = await payer.subscribe('Claim', () => undefined).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_SETUP_MISSING' });
    expect((err as Error).message).toMatch(/PHI_DELIVER\/deliver-partner-payer-Claim .*nats-provision/);
    // A type the catalog does not deliver to it: its identity may not even read that consumer.
    const denied = await payer.subscribe('Patient', () => undefined).catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'E_NOT_AUTHORIZED' });
    expect((denied as Error).message).toContain('PHI_DELIVER/deliver-partner-payer-Patient');
    // A broker starting now stops with the same error: under its identity it may check the consumer, not create it.
    const brokerErr = await stack.startBroker(logger).catch((e: unknown) => e);
    expect(brokerErr).toMatchObject({ code: 'E_SETUP_MISSING' });
    expect((brokerErr as Error).message).toContain('PHI_DELIVER/deliver-partner-payer-Claim');
    // Provisioning again (what `phi-broker nats-provision` runs) restores it, and the subscriber binds.
    await provisionStreams(admin, stack.config, stack.catalog);
    const sub = await payer.subscribe('Claim', () => undefined);
    await sub.stop();
  });

  it('a right-of-access answer larger than max_payload travels in parts: the broker may ask for them, the service may serve them', async () => {
    const logFrom = serverLogSize();
    const registration = await serviceClient('registration');
    // About 2 MB: two messages' worth at the generated config's max_payload (1 MiB).
    const many = Array.from({ length: 1000 }, (_, i) => ({
      resourceType: 'Observation' as const,
      id: `o-${i}`,
      status: 'final' as const,
      code: { text: 'note '.repeat(400) },
      subject: { reference: 'Patient/p-mtls-1' },
    }));
    // What it holds (the Patient it published; a holder must answer with every type the registry names) and 2 MB more.
    const held = [{ resourceType: 'Patient' as const, id: 'p-mtls-1' }, ...many];
    await registration.onAccessRequest((ref) => (ref === 'Patient/p-mtls-1' ? held : []));
    const desk = await AccessDesk.start({
      nc: await connectAs(BROKER_IDENTITY),
      catalog: stack.catalog,
      keys: readServiceKeys(stack.keysDir, BROKER_ID),
      peers: stack.peers,
      secrets: ensureBrokerSecrets(stack.keysDir),
      logger,
      retryIntervalMs: 0,
      answerTimeoutMs: 30_000,
    });
    try {
      const r = await desk.create('Patient/p-mtls-1');
      expect(r.services['registration']).toMatchObject({ state: 'answered', resources: 1001 });
      expect(logs.records().some((x) => x['event'] === 'access.parts' && x['service'] === 'registration')).toBe(true);
      expect(stack.log().slice(logFrom)).not.toMatch(/Violation/);
    } finally {
      await desk.stop();
    }
  }, 120_000);

  it('the SDK refuses a plaintext-only setup without insecure, naming the fix', async () => {
    await expect(
      PhiClient.connect({
        servers: stack.server.url,
        service: 'registration',
        keys: readServiceKeys(stack.keysDir, 'registration'),
        peers: stack.peers,
      }),
    ).rejects.toMatchObject({
      code: 'E_CONFIG_INVALID',
      message: expect.stringContaining('refusing to connect to NATS without TLS') as unknown as string,
    });
  });
});
