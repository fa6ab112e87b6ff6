// The broker instance id: names one broker process's audit chain (subject `phi.audit.<instanceId>`) and is
// the AuditEvent.source.observer of every event it writes. Set it (config `instanceId`,
// PHI_BROKER_INSTANCE_ID) to continue one chain across restarts of the same deployment slot; by default each
// Broker gets its own, from host name, process id and random bits, so two processes never share a chain.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** `<host>-<pid>-<6 hex>`: the host name reduced to subject-safe characters and at most 20 of them. */
export function defaultInstanceId(host: string = hostname(), pid: number = process.pid): string {
  const safeHost =
    host
      .replace(/[^A-Za-z0-9-]/g, '-')
      .replace(/^-+/, '')
      .slice(0, 20) || 'broker';
  return `${safeHost}-${pid}-${randomBytes(3).toString('hex')}`;
}
