// Before/after on a busy machine: the broker's pure per-message path (checkEnvelope + routeMessage: parse,
// verify, hash, decrypt, validate, project and seal + sign every delivery — a Patient to the 3 subscribers of
// bench/catalog/fanout-3) of two builds, interleaved in one process in rounds of 100 messages, so other load
// hits both alike; prints the median CPU µs per message of each and the median per-round ratio. Then the same
// for the audit trail's work per accepted message (facts and AuditEvent JSON), the NATS client's JetStream publish
// with and without nats.js `noAsyncTraces`, nats.js `js.publish` against src/nats/acked-publish.ts, and each build's
// registry update (src/registry/store.ts `record`).
//   node dist/bench/ab-builds.js <root-of-build-A> [<root-of-build-B> = this checkout]
// A build root is a checkout with `npm run build` done (dist/src and dist/bench), e.g. a `git worktree` of main.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers as natsHeaders, type NatsConnection } from 'nats';
import type * as BrokerFactsModule from '../src/broker/audit-facts.js';
import type * as EventJsonModule from '../src/audit/event-json.js';
import type { EventContext } from '../src/audit/event.js';
import type * as PipelineModule from '../src/broker/pipeline.js';
import type * as RoutesModule from '../src/broker/routes.js';
import type * as SecretsModule from '../src/crypto/broker-secrets.js';
import type * as KeyringModule from '../src/crypto/keyring.js';
import type * as KeyFilesModule from '../src/runtime/key-files.js';
import type * as SodiumModule from '../src/crypto/sodium.js';
import type * as LimitsModule from '../src/fhir/limits.js';
import type * as PseudonymizerModule from '../src/projection/pseudonymizer.js';
import type * as PseudonymModule from '../src/registry/pseudonym.js';
import { BROKER_ID } from '../src/wire/ids.js';
import { Keyring } from '../src/crypto/keyring.js';
import { readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { sealEnvelope } from '../src/envelope/seal.js';
import { AckedPublisher } from '../src/nats/acked-publish.js';
import { startNatsServer } from '../src/nats/server.js';
import { HERE } from './ab-args.js';
import { fanoutThree } from './ab-fixture.js';
import { median } from './repeat.js';
import { patient } from './resources.js';

interface Build {
  readonly pipeline: typeof PipelineModule;
  readonly routes: typeof RoutesModule;
  readonly secrets: typeof SecretsModule;
  readonly keyring: typeof KeyringModule;
  readonly keys: typeof KeyFilesModule;
  readonly sodium: typeof SodiumModule;
  readonly limits: typeof LimitsModule;
  readonly pseudonymizer: typeof PseudonymizerModule;
  readonly pseudonym: typeof PseudonymModule;
  readonly facts: typeof BrokerFactsModule;
  readonly eventJson: typeof EventJsonModule;
}

async function load(root: string): Promise<Build> {
  // A module at its path in this layout, or at its path in a build from before src/wire/ and src/runtime/.
  const m = async <T>(p: string, before?: string): Promise<T> => {
    const at = join(root, 'dist', 'src', p);
    return (await import(before !== undefined && !existsSync(at) ? join(root, 'dist', 'src', before) : at)) as T;
  };
  return {
    pipeline: await m('broker/pipeline.js'),
    routes: await m('broker/routes.js'),
    secrets: await m('crypto/broker-secrets.js', 'broker/secrets.js'),
    keyring: await m('crypto/keyring.js'),
    keys: await m('runtime/key-files.js', 'crypto/keys.js'),
    sodium: await m('crypto/sodium.js'),
    limits: await m('fhir/limits.js'),
    pseudonymizer: await m('projection/pseudonymizer.js'),
    pseudonym: await m('registry/pseudonym.js'),
    facts: await m('broker/audit-facts.js', 'audit/broker-facts.js'),
    eventJson: await m('audit/event-json.js'),
  };
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Median CPU µs of `a` and `b` (alternating rounds) and the median of the per-round ratio b / a. */
async function interleave(
  rounds: number,
  a: () => Promise<void> | void,
  b: () => Promise<void> | void,
): Promise<{ a: number; b: number; ratio: number }> {
  const ta: number[] = [];
  const tb: number[] = [];
  const r: number[] = [];
  for (let k = 0; k < rounds; k++) {
    let c0 = cpuUs();
    await a();
    const da = cpuUs() - c0;
    c0 = cpuUs();
    await b();
    const db = cpuUs() - c0;
    ta.push(da);
    tb.push(db);
    r.push(db / da);
  }
  return { a: median(ta), b: median(tb), ratio: median(r) };
}

async function main(): Promise<void> {
  const rootA = process.argv[2];
  const rootB = process.argv[3] ?? HERE;
  if (rootA === undefined)
    throw new TypeError('usage: node dist/bench/ab-builds.js <root-of-build-A> [<root-of-build-B>]');
  await initCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-ab-'));
  try {
    const { keysDir, catalog, secrets } = fanoutThree(dir);
    const master = secrets.pseudonymKey;
    const pubKeys = readServiceKeys(keysDir, 'registration');
    const pubRing = new Keyring(pubKeys, readJwks(keysDir));
    const kek = pubRing.kekFor(pubRing.encryptionKeyOf(BROKER_ID).kid);
    const messages = Array.from({ length: 64 }, (_, i) => {
      const s = sealEnvelope({
        id: randomUUID(),
        iss: 'registration',
        iat: Date.now(),
        typ: 'Patient',
        resource: patient(i),
        signer: pubKeys.sign,
        recipients: [{ id: BROKER_ID, kek }],
      });
      return { subject: 'phi.ingest.registration.Patient', data: s.bytes, signature: s.sig, storedAtMs: Date.now() };
    });
    const pipelineContext = async (m: Build): Promise<PipelineModule.PipelineContext> => {
      await m.sodium.initCrypto();
      const brokerKeys = m.keys.readServiceKeys(keysDir, BROKER_ID);
      const cache = new Map<string, (v: string) => string>();
      return {
        keyring: new m.keyring.Keyring(brokerKeys, m.keys.readJwks(keysDir)),
        signer: brokerKeys.sign,
        routes: m.routes.compileRoutes(catalog),
        limits: m.limits.DEFAULT_VALIDATION_LIMITS,
        maxMessageBytes: 1 << 20,
        maxDeliveryBytes: 1 << 20,
        clockSkewMs: 300_000,
        replayWindowMs: 6 * 3_600_000,
        pseudonymizerFor: (s) => {
          let p = cache.get(s);
          if (p === undefined)
            cache.set(s, (p = m.pseudonymizer.pseudonymizer(m.secrets.subscriberPseudonymKey(master, s))));
          return p;
        },
        now: Date.now,
      };
    };
    const perMessage = async (root: string): Promise<() => void> => {
      const m = await load(root);
      const ctx = await pipelineContext(m);
      let i = 0;
      return () => {
        for (let k = 0; k < 100; k++)
          m.pipeline.routeMessage(
            m.pipeline.checkEnvelope(messages[i++ % messages.length] as PipelineModule.IngestMessage, ctx),
            ctx,
          );
      };
    };
    // The audit trail's work per accepted message: acceptedFacts and AuditEventJson for each fact, on each build's own
    // routeMessage output with the patients resolved and pseudonymised as the broker does. The writer's context also
    // carries a pseudonym function, for builds whose trail computed its own (before the facts carried pseudonyms).
    const auditPerMessage = async (root: string): Promise<() => void> => {
      const m = await load(root);
      const secrets = { pseudonymKey: master };
      const pseudonymOf = (ref: string): string => m.pseudonym.patientPseudonym(secrets, ref);
      const ctx = { ...(await pipelineContext(m)), patients: { rule: catalog.patients, pseudonymOf } };
      const routed = messages.map((msg) => {
        const checked = m.pipeline.checkEnvelope(msg, ctx);
        return { checked, routed: m.pipeline.routeMessage(checked, ctx) };
      });
      const writer = new m.eventJson.AuditEventJson({
        instanceId: 'ab',
        host: 'ab',
        now: Date.now,
        newId: randomUUID,
        pseudonym: pseudonymOf,
      } as EventContext);
      const elementsOf = m.facts.profileElements(catalog);
      let i = 0;
      return () => {
        for (let k = 0; k < 100; k++) {
          const r = routed[i++ % routed.length] as (typeof routed)[number];
          for (const f of m.facts.acceptedFacts(r.checked, i, r.routed, elementsOf, 'broker:sig:1', pseudonymOf))
            writer.json(f);
        }
      };
    };
    const runA = await perMessage(rootA);
    const runB = await perMessage(rootB);
    for (let k = 0; k < 3; k++) {
      runA();
      runB();
    }
    const p = await interleave(40, runA, runB);
    process.stdout.write(
      `pipeline (Patient, fan-out 3): A ${(p.a / 100).toFixed(0)} µs/msg, B ${(p.b / 100).toFixed(0)} µs/msg, B/A ${p.ratio.toFixed(3)}\n`,
    );
    const auditA = await auditPerMessage(rootA);
    const auditB = await auditPerMessage(rootB);
    for (let k = 0; k < 20; k++) {
      auditA();
      auditB();
    }
    const au = await interleave(60, auditA, auditB);
    process.stdout.write(
      `audit facts + AuditEvent JSON (Patient, fan-out 3): A ${(au.a / 100).toFixed(1)} µs/msg, B ${(au.b / 100).toFixed(1)} µs/msg, B/A ${au.ratio.toFixed(3)}\n`,
    );

    const nats = await startNatsServer({ dir: join(dir, 'nats') });
    const traced = await connect({ servers: nats.url });
    const untraced = await connect({ servers: nats.url, noAsyncTraces: true });
    try {
      await (await traced.jetstreamManager()).streams.add({ name: 'AB', subjects: ['ab.>'] });
      const body = new Uint8Array(2_700).fill(65);
      const batch = (nc: NatsConnection) => async (): Promise<void> => {
        const js = nc.jetstream();
        await Promise.all(
          Array.from({ length: 200 }, () => {
            const h = natsHeaders();
            h.set('Phi-Sig', 'x'.repeat(86));
            return js.publish('ab.x', body, { msgID: randomUUID(), headers: h });
          }),
        );
      };
      await batch(traced)();
      await batch(untraced)();
      const n = await interleave(30, batch(traced), batch(untraced));
      process.stdout.write(
        `JetStream publish: async traces ${(n.a / 200).toFixed(0)} µs, noAsyncTraces ${(n.b / 200).toFixed(0)} µs, ratio ${n.ratio.toFixed(3)}\n`,
      );
      const acked = new AckedPublisher(untraced);
      const viaAcked = async (): Promise<void> => {
        await Promise.all(
          Array.from({ length: 200 }, () => {
            const h = natsHeaders();
            h.set('Phi-Sig', 'x'.repeat(86));
            return acked.publish('ab.x', body, { msgID: randomUUID(), headers: h });
          }),
        );
      };
      await viaAcked();
      const p2 = await interleave(30, batch(untraced), viaAcked);
      process.stdout.write(
        `JetStream publish: nats.js js.publish ${(p2.a / 200).toFixed(0)} µs, AckedPublisher ${(p2.b / 200).toFixed(0)} µs, ratio ${p2.ratio.toFixed(3)}\n`,
      );
      // The registry update per message: each build's RegistryStore, 200 observations per round over 64 keys
      // (each key written again every round, as a patient's messages keep coming), 64 in flight.
      const storeOf = async (root: string): Promise<{ record(key: string, obs: unknown): Promise<void> }> =>
        (
          (await import(join(root, 'dist', 'src', 'registry', 'store.js'))) as {
            RegistryStore: { open(nc: NatsConnection): Promise<{ record(key: string, obs: unknown): Promise<void> }> };
          }
        ).RegistryStore.open(untraced);
      const storeA = await storeOf(rootA);
      const storeB = await storeOf(rootB);
      let seq = 0;
      const records =
        (store: { record(key: string, obs: unknown): Promise<void> }, tag: string) => async (): Promise<void> => {
          for (let k = 0; k < 200; k += 64) {
            await Promise.all(
              Array.from({ length: Math.min(64, 200 - k) }, (_, j) =>
                store.record(`${tag}-${j}`, {
                  messageId: randomUUID(),
                  type: 'Patient',
                  types: ['Patient'],
                  at: Date.now() + seq++,
                  source: 'registration',
                  recipients: [
                    { service: 'sub1', purpose: 'TREAT' },
                    { service: 'sub2', purpose: 'HPAYMT' },
                    { service: 'sub3', purpose: 'HOPERAT' },
                  ],
                }),
              ),
            );
          }
        };
      await records(storeA, 'a')();
      await records(storeB, 'b')();
      const g = await interleave(20, records(storeA, 'a'), records(storeB, 'b'));
      process.stdout.write(
        `registry update: A ${(g.a / 200).toFixed(0)} µs, B ${(g.b / 200).toFixed(0)} µs, B/A ${g.ratio.toFixed(3)}\n`,
      );
    } finally {
      await traced.close();
      await untraced.close();
      await nats.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`ab-builds: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
