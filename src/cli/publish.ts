// `phi-broker publish --as <service> [file|-]`: publish FHIR JSON as a service with its development keys.
// A Bundle goes out as its entries (unless --whole). Prints each result (docs/publishing.md); the exit code says
// what a script may do next: 0 all accepted, 1 a rejection, 3 stored without a verdict yet (do not resend),
// 4 not stored (safe to resend that entry).
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
    case 'stored':
      return `stored ${r.id}: ${r.message}`;
    case 'not_stored':
      return `not_stored ${r.id} ${r.code}: ${r.message}${r.inDoubt ? ' (in doubt: an attempt reached NATS unanswered)' : ''}`;
  }
}

/** The exit code for a set of results: the one that asks the most of the caller wins. */
export function exitCodeOf(results: readonly PublishResult[]): number {
  const has = (status: PublishResult['status']): boolean => results.some((r) => r.status === status);
  if (has('not_stored')) return 4;
  if (has('rejected')) return 1;
  if (has('stored')) return 3;
  return 0;
}

export async function runPublish(
  config: BrokerConfig,
  service: string,
  input: Buffer,
  opts: { whole: boolean; deadlineMs: number },
): Promise<number> {
  const { keys, peers } = await serviceKeys(config, service);
  const { nc, insecure } = await connectService(config, service, `phi-broker publish ${service}`);
  const client = await PhiClient.connect({
    nc,
    ownsConnection: true,
    service,
    keys,
    peers,
    publishDeadlineMs: opts.deadlineMs,
    insecure,
  });
  try {
    const text = input.toString('utf8');
    const results =
      !opts.whole && isBundle(text) ? await client.publishBundle(JSON.parse(text)) : [await client.publish(input)];
    for (const r of results) process.stdout.write(`${formatResult(r)}\n`);
    return exitCodeOf(results);
  } finally {
    await client.close();
  }
}
