// The AuditEvent of an operator command's compliance action (consent add|revoke, access request|extend|export,
// quarantine show --decrypt, registry show, disclosures, audit query|export): written by the command itself, over
// the connection it already holds, on a hash chain of its own (`cli.<host>-<pid>-<hex>`, subject `phi.audit.cli.<…>`, recorder `cli`, checkpoints
// signed with the operator commands' own audit key, party `operator`, never the broker's), and closed with its final checkpoint
// before the command shows or reports anything. A command whose event is not stored fails: E_AUDIT_UNRECORDED.
import { hostname, userInfo } from 'node:os';
import type { NatsConnection } from 'nats';
import type { BrokerConfig } from '../config/config.js';
import { AuditTrail } from '../audit/trail.js';
import type { OperatorActionFact } from '../audit/facts.js';
import { defaultInstanceId } from '../audit/instance.js';
import { createLogger } from '../log/log.js';
import { initCrypto } from '../crypto/sodium.js';
import { OPERATOR_AUDIT_ID } from '../wire/ids.js';
import { operatorChain } from '../wire/names.js';
import { BrokerError, isBrokerError } from '../wire/errors.js';
import { layout, natsUrl, operatorIdentity, type OperatorAccess } from './data-dir.js';
import { openServiceKeys } from './key-files.js';
import { configuredKeyProtection } from './key-protection.js';

/** What the command did; the operator, its NATS identity and the server are filled in here. */
export type OperatorAction = Omit<OperatorActionFact, 'kind' | 'operator' | 'identity' | 'server'>;

/** The person running the command: `--operator` / PHI_BROKER_OPERATOR, else the operating-system user. */
export function operatorName(config: Pick<BrokerConfig, 'operator'>): string {
  if (config.operator !== undefined) return config.operator;
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? process.env.LOGNAME ?? '';
  }
  const safe = user.replace(/[^A-Za-z0-9._@-]/g, '-').slice(0, 64);
  return /^[A-Za-z0-9]/.test(safe) ? safe : `os-user-${safe || 'unknown'}`.slice(0, 64);
}

/** The first NATS server's host, as the command reached it (the server agent's network address). */
function serverHost(config: BrokerConfig): string {
  const first = natsUrl(config).split(',')[0]?.trim() ?? '';
  try {
    return new URL(first.includes('://') ? first : `nats://${first}`).hostname || 'localhost';
  } catch {
    return 'localhost';
  }
}

/**
 * Records the action and resolves once its record and the chain's final checkpoint are stored. `access` is what the
 * command connected as (its NATS identity goes into the event). `changed`: for a command that wrote before it could
 * audit, what it stored — named in the error, since that change stands.
 */
export async function recordOperatorAction(
  config: BrokerConfig,
  nc: NatsConnection,
  access: OperatorAccess,
  action: OperatorAction,
  changed?: string,
): Promise<void> {
  const identity = operatorIdentity(config, access);
  const fact: OperatorActionFact = {
    kind: 'operator-action',
    ...action,
    operator: operatorName(config),
    ...(identity === undefined ? {} : { identity: identity.id }),
    server: serverHost(config),
  };
  // The chain's own info lines (opened, checkpoint) are not the command's output: warnings and errors only, unless debugging.
  const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
  let trail: AuditTrail | undefined;
  try {
    await initCrypto(); // the checkpoints' Ed25519 signatures
    trail = await AuditTrail.open({
      nc,
      // One chain per command run: commands run concurrently, and a chain has one writer.
      settings: { ...config, instanceId: operatorChain(defaultInstanceId(hostname())), auditIntegrityCheckMs: 0 },
      signer: (await openServiceKeys(layout(config).keys, OPERATOR_AUDIT_ID, configuredKeyProtection(config))).sign,
      logger,
      recorder: 'cli',
    });
    await trail.record([fact]);
    await trail.close();
  } catch (err) {
    await trail?.close().catch(() => undefined);
    throw new BrokerError(
      'E_AUDIT_UNRECORDED',
      `${action.action}: ${changed === undefined ? '' : `${changed} was stored, but `}its AuditEvent could not be stored (${isBrokerError(err) ? err.code : err instanceof Error ? err.message : String(err)})`,
      { cause: err },
    );
  }
}
