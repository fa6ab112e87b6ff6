// The broker's in-memory view of active patient restrictions, fed by a watch on KV `phi_consent` (an ordered
// push consumer over the bucket's stream, NATS ADR-8), so the per-message check is a map look-up.
//
// Window: a restriction takes effect in a broker once its watcher has applied the KV revision that stored it —
// normally within milliseconds of the write. A message routed before that (in flight, or processed in that
// instant) goes out under the previous state, and deliveries already in PHI_DELIVER are not recalled. Likewise
// a revocation restores the flow for messages routed after it is applied. `revision` and `waitForRevision`
// expose the point reached; every change is logged `consent.applied` with its revision, the initial load
// `consent.loaded`. Broker start waits for the initial load, so no message is routed before the restrictions
// already stored are known. A value that cannot be opened or checked (tampering, a foreign key, a Consent whose
// patient does not resolve under the catalog's matching rule to the patient its key names) becomes a
// restriction that denies every delivery about that patient, logged `consent.unreadable`: fail closed.
import type { KV, KvEntry, QueuedIterator } from 'nats';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';
import type { PatientMatchDef } from '../catalog/types.js';
import { errorFields, type Logger } from '../log/log.js';
import { patientPseudonym } from '../registry/pseudonym.js';
import {
  checkConsent,
  consentPatient,
  denyAllRestriction,
  isConsentId,
  restrictionOf,
  type Restriction,
} from './consent.js';
import type { RestrictionPolicy } from './decide.js';
import { consentStoreKey, openConsentValue } from './sealed.js';

export class ConsentView implements RestrictionPolicy {
  /** patient pseudonym → consent id → active restriction. */
  private readonly byPatient = new Map<string, Map<string, Restriction>>();
  private active = 0;
  private current = 0;
  private waiters: { revision: number; resolve: () => void }[] = [];
  private iterator: QueuedIterator<KvEntry> | undefined;
  private stopping = false;

  private constructor(
    private readonly kv: KV,
    private readonly secrets: Pick<BrokerSecrets, 'pseudonymKey'>,
    private readonly key: Uint8Array,
    private readonly rule: PatientMatchDef,
    private readonly logger: Logger,
  ) {}

  /** Starts watching and resolves once every restriction already stored has been applied. `rule`: the catalog's patient matching rule. */
  static async start(
    kv: KV,
    secrets: Pick<BrokerSecrets, 'pseudonymKey'>,
    rule: PatientMatchDef,
    logger: Logger,
  ): Promise<ConsentView> {
    const view = new ConsentView(kv, secrets, consentStoreKey(secrets), rule, logger);
    await view.watch();
    return view;
  }

  /** The last KV revision applied. */
  get revision(): number {
    return this.current;
  }

  /** Resolves once the view has applied `revision` (e.g. the one ConsentStore.add returned). */
  waitForRevision(revision: number): Promise<void> {
    if (this.current >= revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  hasAny(): boolean {
    return this.active > 0;
  }

  restrictionsOf(patient: string): Iterable<Restriction> | undefined {
    return this.byPatient.get(patient)?.values();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.iterator?.stop();
  }

  private async watch(): Promise<void> {
    let loaded!: () => void;
    const initialized = new Promise<void>((resolve) => (loaded = resolve));
    let ready = false;
    const iterator = await this.kv.watch({
      initializedFn: () => {
        ready = true;
        this.logger.info(
          { event: 'consent.loaded', revision: this.current, restrictions: this.active },
          'patient restrictions loaded',
        );
        loaded();
      },
    });
    this.iterator = iterator;
    void (async () => {
      for await (const e of iterator) {
        this.apply(e, ready);
      }
    })().then(
      () => this.ended(),
      (err: unknown) => this.ended(err),
    );
    await initialized;
  }

  /** The watch ended without stop(): restart it, so the view does not silently freeze. */
  private ended(err?: unknown): void {
    if (this.stopping) return;
    this.logger.error(
      { event: 'consent.watch.ended', revision: this.current, ...(err === undefined ? {} : errorFields(err)) },
      'consent watch ended; restarting',
    );
    this.watch().catch((e: unknown) =>
      this.logger.error(
        { event: 'consent.watch.failed', ...errorFields(e) },
        'consent watch could not restart; restrictions are frozen at the last revision',
      ),
    );
  }

  private apply(e: KvEntry, ready: boolean): void {
    const dot = e.key.indexOf('.');
    const patient = e.key.slice(0, dot);
    // The id comes from a KV key anyone with write access could choose: only a consent id (a UUID) is logged.
    const id = e.key.slice(dot + 1);
    const shownId = isConsentId(id) ? id : 'not-a-consent-id';
    let restriction: Restriction | undefined;
    if (dot > 0 && e.operation === 'PUT') {
      try {
        const consent = checkConsent(openConsentValue(this.key, e.key, e.value), this.rule);
        restriction = restrictionOf(consent);
        if (restriction.id !== id) throw new TypeError('consent id differs from its key');
        if (patientPseudonym(this.secrets, consentPatient(consent, this.rule)) !== patient)
          throw new TypeError('consent patient differs from its key');
      } catch (err) {
        this.logger.error(
          { event: 'consent.unreadable', revision: e.revision, consent: shownId, ...errorFields(err) },
          'a stored restriction could not be read: every delivery about its patient is withheld',
        );
        restriction = denyAllRestriction(shownId);
      }
    }
    this.set(patient, id, restriction?.active === true ? restriction : undefined);
    this.current = Math.max(this.current, e.revision);
    if (ready)
      this.logger.info(
        {
          event: 'consent.applied',
          revision: e.revision,
          consent: shownId,
          status: restriction === undefined ? 'deleted' : restriction.active ? 'active' : 'inactive',
        },
        'patient restriction applied',
      );
    this.waiters = this.waiters.filter((w) => {
      if (w.revision > this.current) return true;
      w.resolve();
      return false;
    });
  }

  private set(patient: string, id: string, restriction: Restriction | undefined): void {
    let forPatient = this.byPatient.get(patient);
    const had = forPatient?.has(id) === true;
    if (restriction === undefined) {
      if (!had) return;
      forPatient?.delete(id);
      this.active -= 1;
      if (forPatient?.size === 0) this.byPatient.delete(patient);
      return;
    }
    if (forPatient === undefined) {
      forPatient = new Map();
      this.byPatient.set(patient, forPatient);
    }
    forPatient.set(id, restriction);
    if (!had) this.active += 1;
  }
}
