// `phi-broker consent add|list|revoke`: patient restrictions (45 CFR 164.522(a)) stored as sealed FHIR Consent
// resources in KV phi_consent (src/consent/store.ts). The output is the operator's own: it names the Consent id,
// its status and what it denies; the patient reference appears only where the operator typed it. `--patient` is
// the patient in the catalog's canonical form (subjects/patients.yaml; src/registry/patient-key.ts), as for
// `registry`, `access`, `audit` and `disclosures`.
import type { Writable } from 'node:stream';
import type { Consent } from 'fhir/r4.js';
import type { BrokerConfig } from '../config/config.js';
import { DENY_PATHS, restrictionOf } from '../consent/consent.js';
import { ConsentStore } from '../consent/store.js';
import { initCrypto } from '../crypto/sodium.js';
import { existingBrokerSecrets } from '../runtime/broker-secrets.js';
import { connectOperator, loadConfiguredCatalog, type OperatorAccess } from '../runtime/data-dir.js';
import { BrokerError, isBrokerError } from '../wire/errors.js';

/** The option that fills each Consent element, so a refusal names what the operator typed. */
const FLAG_OF: ReadonlyMap<string, string> = new Map([
  [DENY_PATHS.recipient, '--deny-recipient'],
  [DENY_PATHS.purpose, '--deny-purpose'],
  [DENY_PATHS.label, '--deny-label'],
  [DENY_PATHS.any, '--deny-recipient, --deny-purpose or --deny-label'],
]);

function asOptionError(err: unknown): unknown {
  const flag = isBrokerError(err) && err.path !== undefined ? FLAG_OF.get(err.path) : undefined;
  if (flag === undefined || !isBrokerError(err) || err.path === undefined) return err;
  const message = err.message.startsWith(`${err.path}:`) ? flag + err.message.slice(err.path.length) : err.message;
  return new BrokerError(err.code, message, { path: flag, cause: err });
}

export interface ConsentAddOptions {
  readonly patient: string;
  readonly denyRecipient: readonly string[];
  readonly denyPurpose: readonly string[];
  readonly denyLabel: readonly string[];
  readonly reason?: string;
}

async function withStore<T>(
  config: BrokerConfig,
  access: OperatorAccess,
  fn: (store: ConsentStore) => Promise<T>,
): Promise<T> {
  await initCrypto();
  const secrets = await existingBrokerSecrets(config);
  const catalog = loadConfiguredCatalog(config);
  const nc = await connectOperator(config, 'phi-broker consent', access);
  try {
    return await fn(
      await ConsentStore.open(
        nc,
        secrets,
        { services: catalog.services.keys(), patients: catalog.patients },
        Date.now,
        config.replicas,
      ),
    );
  } finally {
    await nc.close();
  }
}

export function describeConsent(c: Consent): string {
  const r = restrictionOf(c);
  const denies = [
    ...[...r.recipients].map((s) => `recipient ${s}`),
    ...[...r.purposes].map((p) => `purpose ${p}`),
    ...[...r.labels].map((l) => `label ${l}`),
  ].join(', ');
  return `${c.id ?? '-'}  ${c.status}  ${c.dateTime ?? '-'}  denies: ${denies}`;
}

export async function runConsentAdd(
  config: BrokerConfig,
  opts: ConsentAddOptions,
  out: Writable = process.stdout,
): Promise<void> {
  const stored = await withStore(config, 'write', (store) =>
    store
      .add({
        patient: opts.patient,
        denyRecipients: opts.denyRecipient,
        denyPurposes: opts.denyPurpose,
        denyLabels: opts.denyLabel,
        ...(opts.reason === undefined ? {} : { reason: opts.reason }),
      })
      .catch((err: unknown) => {
        throw asOptionError(err);
      }),
  );
  out.write(`added ${describeConsent(stored.consent)}\n`);
  out.write(
    `kv revision ${stored.revision}: brokers apply it once their view reaches this revision (logged consent.applied)\n`,
  );
}

export async function runConsentList(
  config: BrokerConfig,
  opts: { readonly patient: string; readonly json: boolean },
  out: Writable = process.stdout,
): Promise<void> {
  const list = await withStore(config, 'read', (store) => store.list(opts.patient));
  for (const s of list) out.write(`${opts.json ? JSON.stringify(s.consent) : describeConsent(s.consent)}\n`);
  if (!opts.json) out.write(`${list.length} restriction${list.length === 1 ? '' : 's'}\n`);
}

export async function runConsentRevoke(
  config: BrokerConfig,
  id: string,
  out: Writable = process.stdout,
): Promise<void> {
  const r = await withStore(config, 'write', (store) => store.revoke(id));
  out.write(
    r.changed
      ? `revoked ${describeConsent(r.consent)}\nkv revision ${r.revision}\n`
      : `already inactive: ${describeConsent(r.consent)}\n`,
  );
}
