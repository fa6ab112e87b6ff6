// A partner gateway on a test stack, as `phi-broker gateway` starts one (src/runtime/gateway.ts): its own NATS
// identity and audit key, the partners' keys from the stack's keys dir, the stack's gateway certificate.
import type { AuditEvent } from 'fhir/r4.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { Gateway, type GatewayOptions } from '../../src/gateway/gateway.js';
import { gatewayPartnerKeys } from '../../src/runtime/gateway.js';
import { PLAIN_KEYS } from '../../src/runtime/key-protection.js';
import { GATEWAY_IDENTITY } from '../../src/tls/identity.js';
import { GATEWAY_AUDIT_ID } from '../../src/wire/ids.js';
import type { TestStack } from './stack.js';

/** `n` numbers the connection and the log child; `options` override or add to the defaults (config, partnerAccess …). */
export async function startTestGateway(
  stack: TestStack,
  n: number,
  instanceId: string,
  options: Partial<GatewayOptions> = {},
): Promise<Gateway> {
  const tls = stack.nats.tls;
  if (tls === undefined) throw new Error('expected an mTLS stack');
  return Gateway.start({
    config: stack.config,
    catalog: stack.catalog,
    nc: await stack.connectAs(GATEWAY_IDENTITY, `gateway-${n}`),
    auditKeys: stack.keys(GATEWAY_AUDIT_ID),
    partnerKeys: await gatewayPartnerKeys(stack.keysDir, stack.catalog, PLAIN_KEYS),
    peers: stack.peers,
    keysDir: stack.keysDir,
    tls: tls.gateway,
    logger: stack.logger.child({ gateway: n }),
    instanceId,
    ...options,
  });
}

/** Every AuditEvent in the gateway chains whose subject contains `chain` (an instance id prefix), in stream order. */
export async function gatewayAuditEvents(stack: TestStack, chain: string): Promise<AuditEvent[]> {
  const nc = await stack.connect('audit-reader');
  const events: AuditEvent[] = [];
  try {
    for await (const r of readAuditRecords(nc)) {
      if (!r.subject.includes(chain)) continue;
      events.push(...(decodeRecord(r.data)?.events ?? []));
    }
  } finally {
    await nc.close();
  }
  return events;
}
