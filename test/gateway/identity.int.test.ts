// The partner gateways' own NATS identity against a real nats-server running the configuration generated from the
// shipped catalog: what the gateway needs is allowed (its buckets, its own audit chains `phi.audit.gw.<id>`, each partner's ingest subject of
// a type it may create and its receipts) and the rest is refused by the server — other services' deliveries and
// receipts, the broker's buckets and streams, a broker's or operator command's audit chain, the control and access
// subjects, stream management, a consumer on any stream but the key directory's (which it watches, read-only).
import type { NatsConnection, NatsError } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayIngestSubjects } from '../../src/nats/permissions.js';
import { GATEWAY_IDENTITY } from '../../src/tls/identity.js';
import { gatewayChain, KV_BUCKETS, operatorChain, STREAMS, subjects } from '../../src/wire/names.js';
import { publishDenied } from '../helpers/mtls.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let gw: NatsConnection;

beforeAll(async () => {
  stack = await startTestStack({ broker: false });
  gw = await stack.connectAs(GATEWAY_IDENTITY, 'gateway-identity-test');
});

afterAll(async () => {
  await gw?.close();
  await stack?.stop();
});

/** The server's refusal of a subscription, delivered to it; in once the following flush resolves. */
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

describe('the gateway identity', () => {
  it('may publish only the partners’ create scopes: partner-payer ExplanationOfBenefit, stored by JetStream', async () => {
    expect(gatewayIngestSubjects(stack.catalog)).toEqual([
      'phi.ingest.partner-payer.ExplanationOfBenefit',
      'phi.ingest.partner-payer._raw',
    ]);
    const ack = await gw.jetstream().publish('phi.ingest.partner-payer.ExplanationOfBenefit', new Uint8Array(1));
    expect(ack.stream).toBe(STREAMS.ingest);
  });

  it('may create in its jti, idempotency and rate-limit buckets and read them back', async () => {
    for (const bucket of [KV_BUCKETS.gatewayJti, KV_BUCKETS.gatewayRequests, KV_BUCKETS.gatewayRate]) {
      const kv = await gw.jetstream().views.kv(bucket, { bindOnly: true });
      await kv.create('identity-test', new TextEncoder().encode('x'));
      expect((await kv.get('identity-test'))?.string()).toBe('x');
    }
  });

  it('appends to its own audit chain and witness subjects (gw.<id>), stored by JetStream', async () => {
    const js = gw.jetstream();
    expect((await js.publish(subjects.audit(gatewayChain('gw-identity')), new Uint8Array(1))).stream).toBe(
      STREAMS.audit,
    );
    expect((await js.publish(subjects.witness(gatewayChain('gw-identity')), new Uint8Array(1))).stream).toBe(
      STREAMS.auditWitness,
    );
  });

  it("cannot append to a broker's chain or an operator command's chain, nor witness either", async () => {
    for (const chain of ['broker-host-1-abcdef', operatorChain('host-2-abcdef')]) {
      await publishDenied(req(gw, subjects.audit(chain)), subjects.audit(chain));
      await publishDenied(req(gw, subjects.witness(chain)), subjects.witness(chain));
    }
  });

  it('cannot publish as a partner for a type outside its scopes, nor as an internal service', async () => {
    await publishDenied(req(gw, 'phi.ingest.partner-payer.Patient'), 'phi.ingest.partner-payer.Patient');
    await publishDenied(req(gw, 'phi.ingest.registration.Patient'), 'phi.ingest.registration.Patient');
  });

  it("cannot receive an internal service's deliveries or receipts, nor the broker's inbox", async () => {
    await subscribeDenied(gw, 'phi.deliver.billing.>');
    await subscribeDenied(gw, 'phi.deliver.>');
    await subscribeDenied(gw, 'phi.receipt.billing');
    await subscribeDenied(gw, '_INBOX.broker.>');
    await subscribeDenied(gw, 'phi.ingest.>');
  });

  it("cannot read or write the broker's KV buckets or read PHI_DELIVER / PHI_INGEST", async () => {
    const jsm = await gw.jetstreamManager();
    await publishDenied(
      jsm.streams.getMessage(`KV_${KV_BUCKETS.registry}`, { last_by_subj: `$KV.${KV_BUCKETS.registry}.x` }),
      `$JS.API.STREAM.MSG.GET.KV_${KV_BUCKETS.registry}`,
    );
    await publishDenied(req(gw, `$KV.${KV_BUCKETS.consent}.x`), `$KV.${KV_BUCKETS.consent}.x`);
    await publishDenied(req(gw, `$KV.${KV_BUCKETS.seen}.x`), `$KV.${KV_BUCKETS.seen}.x`);
    await publishDenied(jsm.streams.info(STREAMS.deliver), `$JS.API.STREAM.INFO.${STREAMS.deliver}`);
    await publishDenied(
      req(gw, `$JS.API.DIRECT.GET.${STREAMS.ingest}`, { seq: 1 }),
      `$JS.API.DIRECT.GET.${STREAMS.ingest}`,
    );
    await publishDenied(
      jsm.consumers.add(STREAMS.deliver, { durable_name: 'gw-tap', filter_subject: 'phi.deliver.billing.>' }),
      '$JS.API.CONSUMER.CREATE.PHI_DELIVER.gw-tap.phi.deliver.billing.>',
    );
  });

  it('may watch the key directory but not write it, nor create a consumer on any other stream', async () => {
    const kv = await gw.jetstream().views.kv(KV_BUCKETS.keys, { bindOnly: true });
    let initialized!: () => void;
    const loaded = new Promise<void>((resolve) => (initialized = resolve));
    const watch = await kv.watch({ initializedFn: () => initialized() });
    await loaded;
    watch.stop();
    await publishDenied(req(gw, `$KV.${KV_BUCKETS.keys}.broker`), `$KV.${KV_BUCKETS.keys}.broker`);
    for (const stream of [STREAMS.audit, `KV_${KV_BUCKETS.gatewayJti}`, `KV_${KV_BUCKETS.registry}`])
      await publishDenied(
        req(gw, `$JS.API.CONSUMER.CREATE.${stream}`, { stream_name: stream, config: {} }),
        `$JS.API.CONSUMER.CREATE.${stream}`,
      );
  });

  it('cannot publish on the control, access or delivery subjects, nor manage a stream', async () => {
    await publishDenied(req(gw, 'phi.control.access'), 'phi.control.access');
    await publishDenied(req(gw, 'phi.access.ehr'), 'phi.access.ehr');
    await publishDenied(req(gw, 'phi.deliver.billing.Claim'), 'phi.deliver.billing.Claim');
    await publishDenied(req(gw, 'phi.receipt.partner-payer'), 'phi.receipt.partner-payer');
    const jsm = await gw.jetstreamManager();
    await publishDenied(jsm.streams.delete(STREAMS.audit), `$JS.API.STREAM.DELETE.${STREAMS.audit}`);
  });
});
