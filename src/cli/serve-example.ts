// `phi-broker serve-example <service> [--publish <file>…]`: runs one catalog service as an example built on the SDK
// (src/examples/example-service.ts) until interrupted: it keeps what the broker delivers to it, publishes the given
// FHIR JSON files as its own records, and answers right-of-access questions from what it keeps. For trying the whole
// workflow by hand (docs/patient-rights.md "Try it by hand"); it prints types, counts and profiles, never values.
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { FhirResource } from 'fhir/r4.js';
import type { BrokerConfig } from '../config/config.js';
import { ExampleService, type ExampleEvent } from '../examples/example-service.js';
import { PhiClient } from '../sdk/client.js';
import { connectService, loadConfiguredCatalog, serviceKeys } from '../runtime/data-dir.js';
import { BrokerError } from '../wire/errors.js';
import { formatResult } from './publish.js';

export function formatExampleEvent(service: string, e: ExampleEvent): string {
  return e.kind === 'kept'
    ? `${service}: kept a ${e.type} from ${e.publisher}${e.profile === undefined ? '' : ` (profile ${e.profile})`}`
    : `${service}: answered an access question with ${e.resources} resource${e.resources === 1 ? '' : 's'}${e.types.length === 0 ? '' : ` (${e.types.join(', ')})`}`;
}

/** Starts the example service; `until` resolves when it should stop (SIGINT/SIGTERM from the command). */
export async function runServeExample(
  config: BrokerConfig,
  service: string,
  opts: { publish: readonly string[] },
  until: Promise<void>,
  out: Writable = process.stdout,
): Promise<number> {
  const catalog = loadConfiguredCatalog(config);
  if (!catalog.services.has(service))
    throw new BrokerError(
      'E_USAGE',
      `service: not a service of the catalog (${[...catalog.services.keys()].join(', ')})`,
      {
        path: 'service',
      },
    );
  // Read every file before connecting, so a bad path fails before anything is published.
  const files = opts.publish.map((f) => JSON.parse(readFileSync(f, 'utf8')) as FhirResource);
  const subscribes = [...catalog.topics.values()].some((t) => t.subscribers.some((s) => s.service === service));
  const { keys, peers } = await serviceKeys(config, service);
  const { nc, insecure } = await connectService(config, service, `phi-broker serve-example ${service}`);
  const client = await PhiClient.connect({ nc, ownsConnection: true, service, keys, peers, insecure });
  let exit = 0;
  try {
    const example = await ExampleService.start({
      client,
      rule: catalog.patients,
      subscribe: subscribes,
      onEvent: (e) => out.write(`${formatExampleEvent(service, e)}\n`),
    });
    out.write(
      `${service}: ${subscribes ? 'keeping its deliveries and ' : ''}answering access questions (Ctrl-C to stop)\n`,
    );
    for (const resource of files) {
      const result = await example.publish(resource);
      out.write(`${service}: ${formatResult(result)}\n`);
      if (result.status !== 'accepted') exit = 1;
    }
    await until;
    await example.stop();
  } finally {
    await client.close();
  }
  return exit;
}
