// `phi-broker demo`: the whole story on an embedded NATS (mTLS, each service as its own identity; plaintext only
// with --insecure-plaintext) with the example catalog. registration publishes
// a Patient and ehr an Observation; notification, billing, ehr and analytics each show what they received
// (each its own minimum-necessary projection); one bad message is rejected with its code and quarantined.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FhirResource } from 'fhir/r4.js';
import type { BrokerConfig } from '../config/config.js';
import { createLogger } from '../log/log.js';
import { STREAMS } from '../wire/names.js';
import { BrokerError } from '../wire/errors.js';
import type { Delivered, PublishResult } from '../sdk/client.js';
import { packageRoot } from '../runtime/package-root.js';
import { formatResult } from './publish.js';
import { startLocalStack } from '../runtime/stack.js';

const SUBSCRIBERS = ['notification', 'billing', 'ehr', 'analytics'] as const;

interface DemoSummary {
  ok: boolean;
  published: { file: string; as: string; result: PublishResult }[];
  received: Record<
    string,
    { type: string; profile: string; purpose: string; publisher: string; resource: FhirResource }[]
  >;
}

function example(name: string): unknown {
  return JSON.parse(readFileSync(join(packageRoot(), 'examples', name), 'utf8')) as unknown;
}

export async function runDemo(
  baseConfig: BrokerConfig,
  json: boolean,
  opts: { readonly insecurePlaintext?: boolean } = {},
): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'phi-broker-demo-'));
  const config = Object.freeze({ ...baseConfig, dataDir });
  const logger = createLogger({ level: baseConfig.logLevel });
  const out = (line: string): void => {
    if (!json) process.stdout.write(`${line}\n`);
  };
  const stack = await startLocalStack(config, logger, opts);
  const summary: DemoSummary = { ok: false, published: [], received: {} };
  try {
    out(
      `phi-broker demo — NATS at ${stack.url} (${stack.tlsDir === undefined ? 'INSECURE PLAINTEXT' : 'mTLS, one identity per service'}), catalog ${stack.catalog.hash.slice(0, 12)}`,
    );
    const received = new Map<string, Delivered[]>();
    let arrived = 0;
    let notify: () => void = () => undefined;
    for (const service of SUBSCRIBERS) {
      received.set(service, []);
      const client = await stack.client(service);
      await client.subscribe('*', (d) => {
        received.get(service)?.push(d);
        arrived += 1;
        notify();
      });
    }
    let expected = 0;
    const registration = await stack.client('registration');
    const ehr = await stack.client('ehr');
    const plan: { file: string; as: string; type: string; publish: (r: unknown) => Promise<PublishResult> }[] = [
      { file: 'patient.json', as: 'registration', type: 'Patient', publish: (r) => registration.publish(r) },
      { file: 'observation.json', as: 'ehr', type: 'Observation', publish: (r) => ehr.publish(r) },
      { file: 'bad-patient.json', as: 'registration', type: 'Patient', publish: (r) => registration.publish(r) },
    ];
    for (const step of plan) {
      const result = await step.publish(example(step.file));
      summary.published.push({ file: step.file, as: step.as, result });
      // Deliveries this demo waits for: those to the subscribers it shows (the catalog has more).
      if (result.status === 'accepted') {
        expected +=
          stack.catalog.topics
            .get(step.type)
            ?.subscribers.filter((s) => (SUBSCRIBERS as readonly string[]).includes(s.service)).length ?? 0;
      }
      out(`\n${step.as} publishes examples/${step.file}: ${formatResult(result)}`);
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new BrokerError('E_TIMEOUT', `only ${arrived} of ${expected} deliveries arrived`)),
        20_000,
      );
      notify = () => {
        if (arrived >= expected) {
          clearTimeout(timer);
          resolve();
        }
      };
      notify();
    });
    for (const service of SUBSCRIBERS) {
      const list = received.get(service) ?? [];
      summary.received[service] = list.map((d) => ({
        type: String(d.resource['resourceType']),
        profile: d.provenance.profile,
        purpose: d.provenance.purpose,
        publisher: d.provenance.publisher,
        resource: d.resource,
      }));
      out(`\n=== ${service} received ${list.length} deliver${list.length === 1 ? 'y' : 'ies'}`);
      for (const d of list) {
        out(
          `--- ${String(d.resource['resourceType'])} from ${d.provenance.publisher}, purpose ${d.provenance.purpose}, profile ${d.provenance.profile}`,
        );
        out(JSON.stringify(d.resource, null, 2));
      }
    }
    const statuses = summary.published.map((p) => p.result.status);
    summary.ok =
      statuses[0] === 'accepted' && statuses[1] === 'accepted' && statuses[2] === 'rejected' && arrived === expected;
    const accepted = statuses.filter((x) => x === 'accepted').length;
    const rejected = statuses.filter((x) => x === 'rejected').length;
    const quarantined = (await (await stack.nc.jetstreamManager()).streams.info(STREAMS.quarantine)).state.messages;
    summary.ok = summary.ok && quarantined === rejected;
    out(
      `\n${accepted} accepted, ${rejected} rejected; PHI_QUARANTINE holds ${quarantined} sealed record${quarantined === 1 ? '' : 's'}`,
    );
    out(summary.ok ? 'demo ok' : 'demo FAILED');
  } finally {
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  return summary.ok ? 0 : 1;
}
