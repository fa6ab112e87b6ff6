// `phi-broker access request|status|extend|list|retry|export`: the right-of-access workflow (45 CFR 164.524)
// from the operator's terminal. Commands go to the broker processes on phi.control.access (src/access/desk/control.ts);
// the patient reference leaves this process only sealed under the broker's access key, which — like `registry
// show` and `quarantine show --decrypt` — needs the broker secrets in the data dir. `export` opens the sealed
// answers here, with those secrets, and writes the assembled FHIR Bundle to a file of the operator's choosing.
import { stringifyJson } from '../wire/json.js';
import { writeFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { loadBundle } from '../access/desk/bundle.js';
import { CONTROL_REF_AAD, sendControl, type ControlCommand } from '../access/desk/control.js';
import { isOverdue, unanswered, type AccessRequest, type ServiceState } from '../access/protocol/request.js';
import { accessKey, checkRequestId } from '../access/desk/sealing.js';
import { AccessStore } from '../access/desk/store.js';
import { existingBrokerSecrets } from '../runtime/broker-secrets.js';
import type { BrokerConfig } from '../config/config.js';
import { sealBlob } from '../crypto/aead.js';
import { initCrypto } from '../crypto/sodium.js';
import { canonicalPatientRef } from '../registry/patient-key.js';
import { connectOperator, loadConfiguredCatalog, operatorIdentity, operatorInbox } from '../runtime/data-dir.js';
import { recordOperatorAction, type OperatorAction } from '../runtime/operator-audit.js';

const iso = (ms: number): string => new Date(ms).toISOString();

function describeService(id: string, name: string, s: ServiceState): string {
  switch (s.state) {
    case 'answered':
      return `  ${name}: answered ${iso(s.answeredAt)}, ${s.resources} resource${s.resources === 1 ? '' : 's'} (${
        Object.entries(s.types)
          .map(([t, n]) => `${t} ${n}`)
          .join(', ') || 'none'
      }), sha256 ${s.sha256}`;
    case 'pending':
      return `  ${name}: not yet answered (${s.attempts} attempt${s.attempts === 1 ? '' : 's'}${s.code === undefined ? '' : `, last ${s.code}`}), next attempt ${iso(s.nextAttemptAt)}`;
    case 'failed':
      return `  ${name}: failed (${s.code}${s.path === undefined ? '' : ` at ${s.path}`}; ${s.attempts} attempt${s.attempts === 1 ? '' : 's'}), next attempt ${iso(s.nextAttemptAt)}`;
    case 'refused':
      return `  ${name}: REFUSED ${iso(s.refusedAt)} (${s.code}${s.path === undefined ? '' : ` at ${s.path}`}; ${s.attempts} attempt${s.attempts === 1 ? '' : 's'}), not asked again until \`access retry ${id}\``;
    case 'incomplete':
      return `  ${name}: INCOMPLETE answer ${iso(s.answeredAt)}, ${s.resources} resource${s.resources === 1 ? '' : 's'}, missing ${s.missing.join(', ')} (the registry says it holds them), next attempt ${iso(s.nextAttemptAt)}`;
  }
}

export function formatRequest(r: AccessRequest, now: number): string {
  const missing = unanswered(r);
  const lines = [
    `${r.id}  ${r.status}${r.status === 'partial' || r.status === 'open' ? ` (waiting for: ${missing.join(', ')})` : ''}${isOverdue(r, now) ? '  OVERDUE' : ''}`,
    `  patient ${r.patient}${r.requester === undefined ? '' : `, requested by ${r.requester} (SDK)`}`,
    `  received ${iso(r.receivedAt)}, due ${iso(r.dueAt)}${r.extension === undefined ? '' : ` (extended ${iso(r.extension.at)} from ${iso(r.extension.previousDueAt)}: ${r.extension.reason})`}`,
    ...Object.entries(r.services).map(([name, s]) => describeService(r.id, name, s)),
  ];
  if (Object.keys(r.services).length === 0)
    lines.push('  no service holds data about this patient in the designated record set');
  return `${lines.join('\n')}\n`;
}

export function formatListRow(r: AccessRequest, now: number): string {
  return [
    r.id,
    r.status,
    iso(r.receivedAt),
    iso(r.dueAt),
    isOverdue(r, now) ? 'overdue' : '-',
    unanswered(r).join(',') || '-',
  ].join('  ');
}

/** `audit`: the compliance action a create or extend records once the broker has stored it (docs/audit.md). */
async function control(
  config: BrokerConfig,
  command: ControlCommand,
  audit?: (request: AccessRequest) => OperatorAction,
): Promise<{ requests: readonly AccessRequest[]; now: number }> {
  const nc = await connectOperator(config, 'phi-broker access', 'write');
  try {
    const result = await sendControl(nc, command, operatorInbox(config, 'write'));
    const [request] = result.requests;
    if (audit !== undefined && request !== undefined)
      await recordOperatorAction(config, nc, 'write', audit(request), `request ${request.id}`);
    return result;
  } finally {
    await nc.close();
  }
}

/**
 * status and list: as the read-only auditor (runtime.ts operatorIdentity), read KV phi_access directly — the
 * auditor may not send phi.control.access, which also creates, extends and retries; as the admin, ask the broker.
 */
async function read(
  config: BrokerConfig,
  command: Extract<ControlCommand, { op: 'status' | 'list' }>,
): Promise<{ requests: readonly AccessRequest[]; now: number }> {
  if (operatorIdentity(config, 'read')?.kind !== 'auditor') return control(config, command);
  const nc = await connectOperator(config, 'phi-broker access', 'read');
  try {
    const store = await AccessStore.open(nc, config.replicas);
    const now = Date.now();
    if (command.op === 'status') return { requests: [await store.get(command.id)], now };
    return { requests: (await store.list()).filter((r) => !command.overdue || isOverdue(r, now)), now };
  } finally {
    await nc.close();
  }
}

function print(out: Writable, json: boolean, requests: readonly AccessRequest[], now: number, list = false): void {
  if (json) {
    for (const r of requests)
      out.write(`${JSON.stringify({ ...r, overdue: isOverdue(r, now), unanswered: unanswered(r) })}\n`);
    return;
  }
  for (const r of requests) out.write(list ? `${formatListRow(r, now)}\n` : formatRequest(r, now));
  if (list) out.write(`${requests.length} request${requests.length === 1 ? '' : 's'}\n`);
}

export async function runAccessRequest(
  config: BrokerConfig,
  patient: string,
  opts: { json: boolean },
  out: Writable = process.stdout,
): Promise<void> {
  const ref = canonicalPatientRef(patient, loadConfiguredCatalog(config).patients);
  await initCrypto();
  const key = accessKey(await existingBrokerSecrets(config));
  const sealedRef = Buffer.from(
    sealBlob(key, new TextEncoder().encode(ref), new TextEncoder().encode(CONTROL_REF_AAD)),
  ).toString('base64url');
  const { requests, now } = await control(config, { op: 'create', sealedRef }, (r) => ({
    action: 'access-request',
    patientPseudonym: r.patient,
    object: { kind: 'access-request', id: r.id },
    details: [['services', Object.keys(r.services).join(' ') || '-']],
  }));
  print(out, opts.json, requests, now);
}

export async function runAccessStatus(
  config: BrokerConfig,
  id: string,
  opts: { json: boolean },
  out: Writable = process.stdout,
): Promise<void> {
  const { requests, now } = await read(config, { op: 'status', id: checkRequestId(id) });
  print(out, opts.json, requests, now);
}

export async function runAccessExtend(
  config: BrokerConfig,
  id: string,
  reason: string,
  opts: { json: boolean },
  out: Writable = process.stdout,
): Promise<void> {
  // The reason is the operator's free text (it may name the patient): the event keeps the new due date only.
  const { requests, now } = await control(config, { op: 'extend', id: checkRequestId(id), reason }, (r) => ({
    action: 'access-extend',
    patientPseudonym: r.patient,
    object: { kind: 'access-request', id: r.id },
    details: [['due', iso(r.dueAt)]],
  }));
  print(out, opts.json, requests, now);
}

export async function runAccessList(
  config: BrokerConfig,
  opts: { json: boolean; overdue: boolean },
  out: Writable = process.stdout,
): Promise<void> {
  const { requests, now } = await read(config, { op: 'list', overdue: opts.overdue });
  print(out, opts.json, requests, now, true);
}

export async function runAccessRetry(
  config: BrokerConfig,
  opts: { json: boolean; id?: string | undefined },
  out: Writable = process.stdout,
): Promise<void> {
  const { requests, now } = await control(
    config,
    opts.id === undefined ? { op: 'retry' } : { op: 'retry', id: checkRequestId(opts.id) },
  );
  print(out, opts.json, requests, now, true);
}

/** Writes the assembled Bundle; returns 0 when the request is complete, 2 when it holds only some services' answers. */
export async function runAccessExport(
  config: BrokerConfig,
  id: string,
  file: string,
  out: Writable = process.stdout,
  err: Writable = process.stderr,
): Promise<number> {
  await initCrypto();
  const key = accessKey(await existingBrokerSecrets(config));
  const nc = await connectOperator(config, 'phi-broker access export', 'read');
  try {
    const store = await AccessStore.open(nc, config.replicas);
    const request = await store.get(checkRequestId(id));
    const bundle = await loadBundle(store, key, request, Date.now());
    // Recorded before the record leaves (an unaudited disclosure is worse than none).
    await recordOperatorAction(config, nc, 'read', {
      action: 'access-export',
      patientPseudonym: request.patient,
      object: { kind: 'access-request', id: request.id },
      details: [
        ['resources', String(bundle.entry?.length ?? 0)],
        ['status', request.status],
      ],
    });
    writeFileSync(file, `${stringifyJson(bundle, 2)}\n`, { mode: 0o600 });
    out.write(
      `${id}: ${bundle.entry?.length ?? 0} resources from ${Object.values(request.services).filter((s) => s.state === 'answered').length} service(s) written to ${file}\n`,
    );
    if (request.status === 'complete') return 0;
    err.write(
      `phi-broker: ${id} is ${request.status}: not yet answered by ${unanswered(request).join(', ')}; the Bundle holds only the answers so far\n`,
    );
    return 2;
  } finally {
    await nc.close();
  }
}
