// `phi-broker publish --as <service> [file|-]`: publish FHIR JSON as a service with its development keys.
// A Bundle goes out as its entries (unless --whole). Prints each verdict; exit code 1 if any was not accepted.
import { PhiClient, type PublishResult } from '../sdk/client.js';
import type { BrokerConfig } from '../config/config.js';
import { connectService, serviceKeys } from '../runtime/data-dir.js';

function isBundle(text: string): boolean {
  try {
    const v = JSON.parse(text) as { resourceType?: unknown };
    return typeof v === 'object' && v !== null && v.resourceType === 'Bundle';
  } catch {
    return false;
  }
}

export function formatResult(r: PublishResult): string {
  switch (r.status) {
    case 'accepted':
      return `accepted ${r.id} (${r.deliveries} deliveries)`;
    case 'rejected':
      return `rejected ${r.id} ${r.code}: ${r.message}${r.path === undefined || r.message.startsWith(r.path) ? '' : ` [${r.path}]`}`;
    case 'unknown':
      return `unknown ${r.id} ${r.code}: ${r.message}`;
  }
}

export async function runPublish(
  config: BrokerConfig,
  service: string,
  input: Buffer,
  opts: { whole: boolean; timeoutMs: number },
): Promise<number> {
  const { keys, peers } = await serviceKeys(config, service);
  const { nc, insecure } = await connectService(config, service, `phi-broker publish ${service}`);
  const client = await PhiClient.connect({
    nc,
    ownsConnection: true,
    service,
    keys,
    peers,
    receiptTimeoutMs: opts.timeoutMs,
    insecure,
  });
  try {
    const text = input.toString('utf8');
    const results =
      !opts.whole && isBundle(text) ? await client.publishBundle(JSON.parse(text)) : [await client.publish(input)];
    for (const r of results) process.stdout.write(`${formatResult(r)}\n`);
    return results.every((r) => r.status === 'accepted') ? 0 : 1;
  } finally {
    await client.close();
  }
}
