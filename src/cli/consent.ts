// `phi-broker consent add|list|revoke`: patient restrictions (45 CFR 164.522(a)) stored as sealed FHIR Consent
// resources in KV phi_consent (src/consent/store.ts). The output is the operator's own: it names the Consent id,
// its status and what it denies; the patient reference appears only where the operator typed it. `--patient` is
// the patient in the catalog's canonical form (subjects/patients.yaml; src/registry/patient-key.ts), as for
// `registry`, `access`, `audit` and `disclosures`.
import type { Writable } from 'node:stream';
import type { NatsConnection } from 'nats';
import type { Consent } from 'fhir/r4.js';
import type { BrokerConfig } from '../config/config.js';
import { DENY_PATHS, consentPatient, restrictionOf } from '../consent/consent.js';
import { ConsentStore } from '../consent/store.js';
import { initCrypto } from '../crypto/sodium.js';
import { existingBrokerSecrets } from '../runtime/broker-secrets.js';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';
import type { PatientMatchDef } from '../catalog/types.js';
import { patientPseudonym } from '../registry/pseudonym.js';
import { connectOperator, loadConfiguredCatalog, type OperatorAccess } from '../runtime/data-dir.js';
import { recordOperatorAction } from '../runtime/operator-audit.js';
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

interface StoreContext {
  readonly nc: NatsConnection;
  readonly secrets: BrokerSecrets;
  readonly patients: PatientMatchDef;
}

async function withStore<T>(
  config: BrokerConfig,
  access: OperatorAccess,
  fn: (store: ConsentStore, ctx: StoreContext) => Promise<T>,
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
      { nc, secrets, patients: catalog.patients },
    );
  } finally {
    await nc.close();
  }
}

/** The add or revoke as an AuditEvent: the patient (pseudonym), the Consent by id, what it denies (codes, service ids). */
async function auditConsent(
  config: BrokerConfig,
  ctx: StoreContext,
  action: 'consent-add' | 'consent-revoke',
  consent: Consent,
): Promise<void> {
  const r = restrictionOf(consent);
  await recordOperatorAction(
    config,
    ctx.nc,
    'write',
    {
      action,
      patientPseudonym: patientPseudonym(ctx.secrets, consentPatient(consent, ctx.patients)),
      object: { kind: 'consent', id: consent.id ?? '' },
      details: [
        ['status', consent.status],
        ...(consent.provision?.period?.end === undefined
          ? []
          : [['revoked', consent.provision.period.end] as [string, string]]),
        ...[...r.recipients].map((v): [string, string] => ['deny-recipient', v]),
        ...[...r.purposes].map((v): [string, string] => ['deny-purpose', v]),
        ...[...r.labels].map((v): [string, string] => ['deny-label', v]),
      ],
    },
    `Consent ${consent.id ?? ''}`,
  );
}

export function describeConsent(c: Consent): string {
  const r = restrictionOf(c);
  const denies = [
    ...[...r.recipients].map((s) => `recipient ${s}`),
    ...[...r.purposes].map((p) => `purpose ${p}`),
    ...[...r.labels].map((l) => `label ${l}`),
  ].join(', ');
  const ended = c.provision?.period?.end;
  return `${c.id ?? '-'}  ${c.status}  ${c.dateTime ?? '-'}${ended === undefined ? '' : `  ended ${ended}`}  denies: ${denies}`;
}

export async function runConsentAdd(
  config: BrokerConfig,
  opts: ConsentAddOptions,
  out: Writable = process.stdout,
): Promise<void> {
  const stored = await withStore(config, 'write', async (store, ctx) => {
    const added = await store
      .add({
        patient: opts.patient,
        denyRecipients: opts.denyRecipient,
        denyPurposes: opts.denyPurpose,
        denyLabels: opts.denyLabel,
        ...(opts.reason === undefined ? {} : { reason: opts.reason }),
      })
      .catch((err: unknown) => {
        throw asOptionError(err);
      });
    await auditConsent(config, ctx, 'consent-add', added.consent);
    return added;
  });
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
  const r = await withStore(config, 'write', async (store, ctx) => {
    const revoked = await store.revoke(id);
    // A restriction that was already inactive changed nothing: no event.
    if (revoked.changed) await auditConsent(config, ctx, 'consent-revoke', revoked.consent);
    return revoked;
  });
  out.write(
    r.changed
      ? `revoked ${describeConsent(r.consent)}\nkv revision ${r.revision}\n`
      : `already inactive: ${describeConsent(r.consent)}\n`,
  );
}
