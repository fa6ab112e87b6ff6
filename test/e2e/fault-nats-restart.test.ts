// NATS itself crashes mid-stream: a publisher at a steady rate, the broker and three SDK subscribers on one node;
// nats-server is killed with SIGKILL (by its PID) and started again on the same port and JetStream file store. The
// publisher's SDK holds each message through the outage and resends the same bytes under the same Nats-Msg-Id until
// JetStream acknowledges it (docs/publishing.md), so every publish ends accepted or stored, and every subscriber
// handles every message exactly once. `npm run chaos` runs the long form (PHI_FAULT_* below).
import { performance } from 'node:perf_hooks';
import { AckPolicy, nanos, type NatsConnection } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PhiClient, PublishResult } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';
import { STREAMS, deliveryConsumer, subjects } from '../../src/wire/names.js';
import { startTestStack, Waiter, type TestStack } from '../helpers/stack.js';

const MESSAGES = Number(process.env['PHI_FAULT_MESSAGES'] ?? 300);
const RATE = Number(process.env['PHI_FAULT_RATE'] ?? 50); // messages per second
const KILL_AT = Math.floor(MESSAGES * 0.4); // after this many publishes have started
const OUTAGE_MS = Number(process.env['PHI_FAULT_OUTAGE_MS'] ?? 2_000);
const DEADLINE_MS = 60_000; // longer than the outage: no publish may end not_stored
const SUBSCRIBERS = ['ehr', 'notification', 'billing'] as const;
const TEST_TIMEOUT_MS = 60_000 + (MESSAGES / RATE) * 1_000 + OUTAGE_MS * 2;

let stack: TestStack;

beforeAll(async () => {
  // Short redelivery waits, so work in flight at the crash comes back in seconds: the broker's ingest consumer, and
  // the subscribers' delivery consumers created here before the SDK would create them with its 30 s default.
  stack = await startTestStack({ config: { ackWaitMs: 2_000 } });
  const admin = await stack.connectAs(ADMIN_IDENTITY, 'fault-admin');
  const jsm = await admin.jetstreamManager();
  for (const service of SUBSCRIBERS) {
    await jsm.consumers.add(STREAMS.deliver, {
      durable_name: deliveryConsumer(service, 'Patient'),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(2_000),
      max_deliver: -1,
      filter_subject: subjects.deliverFilter(service, 'Patient'),
    });
  }
  await admin.close();
});

afterAll(async () => {
  await stack?.stop();
});

function p99(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? Number.NaN;
}

async function subjectCounts(nc: NatsConnection): Promise<Record<string, number>> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(STREAMS.deliver, { subjects_filter: 'phi.deliver.*.Patient' });
  return info.state.subjects ?? {};
}

it(
  `kill -9 of nats-server mid-run: ${MESSAGES} publishes at ${RATE}/s all stored, every subscriber gets each once`,
  async () => {
    const waiter = new Waiter();
    const handled = new Map<string, Map<string, number>>(SUBSCRIBERS.map((s) => [s, new Map()]));
    const subscribers: PhiClient[] = [];
    for (const service of SUBSCRIBERS) {
      const client = await stack.client(service);
      subscribers.push(client);
      await client.subscribe('Patient', (d) => {
        const seen = handled.get(service);
        seen?.set(d.provenance.messageId, (seen.get(d.provenance.messageId) ?? 0) + 1);
        waiter.signal();
      });
    }
    const publisher = await stack.client('registration', { publishDeadlineMs: DEADLINE_MS });

    const results: Promise<{ result: PublishResult; started: number; ms: number }>[] = [];
    let killedAt = Number.NaN;
    let restartedAt = Number.NaN;
    let fault: Promise<void> = Promise.resolve();
    const t0 = performance.now();
    for (let i = 0; i < MESSAGES; i++) {
      const due = t0 + (i * 1_000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // the publisher's pace, not awaiting an event
      if (i === KILL_AT) {
        const pid = stack.nats.server.pid;
        await stack.nats.kill();
        killedAt = performance.now();
        process.stdout.write(`fault: killed nats-server pid ${pid} after ${i} publishes\n`);
        fault = new Promise<void>((r) => setTimeout(r, OUTAGE_MS)).then(async () => {
          await stack.nats.restart();
          restartedAt = performance.now();
          process.stdout.write(
            `fault: restarted nats-server pid ${stack.nats.server.pid} on the same port and store\n`,
          );
        });
      }
      const started = performance.now();
      results.push(
        publisher
          .publish({
            resourceType: 'Patient',
            id: `fault-${i}`,
            name: [{ family: `Faultline${i}` }],
            telecom: [{ system: 'phone', value: `555-02${i}` }],
          })
          .then((result) => ({ result, started, ms: performance.now() - started })),
      );
    }
    await fault;
    const settled = await Promise.all(results);
    const ids = new Set(settled.map((s) => s.result.id));
    const statuses = settled.map((s) => s.result.status);
    process.stdout.write(
      `results: ${['accepted', 'stored', 'not_stored', 'rejected'].map((k) => `${k} ${statuses.filter((x) => x === k).length}`).join(', ')}\n`,
    );
    expect(settled.filter((s) => s.result.status !== 'accepted' && s.result.status !== 'stored')).toEqual([]);
    await waiter.until(
      () => SUBSCRIBERS.every((s) => (handled.get(s)?.size ?? 0) >= MESSAGES),
      60_000,
      'every subscriber to handle every message',
    );

    const byStatus = (status: PublishResult['status']): number =>
      settled.filter((s) => s.result.status === status).length;
    const duringFault = settled.filter((s) => s.started >= killedAt && s.started <= restartedAt).map((s) => s.ms);
    const inspector = await stack.connect('fault-inspector');
    const counts = await subjectCounts(inspector);
    const quarantined = (await (await inspector.jetstreamManager()).streams.info(STREAMS.quarantine)).state.messages;
    const acceptedByBroker = new Set(
      stack.logs
        .records()
        .filter((r) => r['event'] === 'ingest.accepted')
        .map((r) => String(r['id'])),
    );
    const retries = stack.logs.records().filter((r) => r['event'] === 'sdk.publish.retry');
    const lines = [
      `published: ${MESSAGES}`,
      `stored and accepted by the broker (unique ids): ${acceptedByBroker.size}; quarantined: ${quarantined}`,
      `resent: ${new Set(retries.map((r) => r['id'])).size} publishes, ${retries.length} attempts beyond the first`,
      ...SUBSCRIBERS.map((s) => {
        const m = handled.get(s) ?? new Map<string, number>();
        const calls = [...m.values()].reduce((a, b) => a + b, 0);
        const lost = [...ids].filter((id) => !m.has(id)).length;
        return `${s}: delivered-unique ${m.size}, duplicates ${calls - m.size}, lost ${lost}, PHI_DELIVER ${counts[subjects.deliver(s, 'Patient')] ?? 0}`;
      }),
      `publish p99: ${p99(duringFault).toFixed(0)} ms for the ${duringFault.length} started during the outage; ${p99(settled.map((s) => s.ms)).toFixed(0)} ms overall`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);

    expect(ids.size).toBe(MESSAGES);
    expect(duringFault.length).toBeGreaterThan(0); // the outage really overlapped the publishing
    for (const s of SUBSCRIBERS) {
      const m = handled.get(s) ?? new Map<string, number>();
      expect(new Set(m.keys())).toEqual(ids);
      expect([...m.values()].filter((n) => n !== 1)).toEqual([]);
      expect(counts[subjects.deliver(s, 'Patient')]).toBe(MESSAGES); // each delivery stored once
    }
    expect(acceptedByBroker).toEqual(ids);
    // A copy stored twice across the restart is rejected by the broker as a replay and quarantined; its publisher
    // saw that as `stored`. Nothing else is quarantined.
    expect(quarantined).toBeLessThanOrEqual(byStatus('stored'));
    expect(stack.logs.text()).not.toMatch(/Faultline|555-02/);
    for (const c of [publisher, ...subscribers]) await c.close();
  },
  TEST_TIMEOUT_MS,
);
