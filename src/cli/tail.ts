// `phi-broker tail --as <service>`: prints a service's decrypted deliveries (its minimum-necessary view,
// with provenance) as they arrive. This is the subscriber's own data on its own terminal.
import type { BrokerConfig } from '../config/config.js';
import { PhiClient, type Delivered, type ResourceType } from '../sdk/client.js';
import { connectService, serviceKeys } from '../runtime/data-dir.js';

export function formatDelivery(d: Delivered, json: boolean): string {
  if (json) return JSON.stringify({ provenance: d.provenance, resource: d.resource });
  const p = d.provenance;
  return `── ${String(d.resource['resourceType'])} from ${p.publisher} (message ${p.messageId}, purpose ${p.purpose}, profile ${p.profile})\n${JSON.stringify(d.resource, null, 2)}`;
}

export async function runTail(
  config: BrokerConfig,
  service: string,
  opts: { type: string; json: boolean; count?: number },
): Promise<void> {
  const { keys, peers } = await serviceKeys(config, service);
  const { nc, insecure } = await connectService(config, service, `phi-broker tail ${service}`);
  const client = await PhiClient.connect({ nc, ownsConnection: true, service, keys, peers, insecure });
  let seen = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  // The type is checked where it becomes a subject (src/wire/names.ts): a bad one is refused there.
  await client.subscribe(opts.type as ResourceType | '*', (d) => {
    // Past --count, deliveries already fetched are refused (not acknowledged), so the next tail gets them.
    if (opts.count !== undefined && seen >= opts.count) throw new Error('tail: --count reached');
    process.stdout.write(`${formatDelivery(d, opts.json)}\n`);
    seen += 1;
    if (opts.count !== undefined && seen >= opts.count) done();
  });
  process.once('SIGINT', done);
  process.once('SIGTERM', done);
  await finished;
  await client.close();
}
