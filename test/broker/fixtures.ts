// Shared fixtures for the broker's pure-core tests: the shipped catalog compiled into routes, deterministic keys for
// the broker and the services it names, a pipeline context with a frozen clock, and helpers that seal and sign an
// ingest message the way a service's SDK does (synthetic patients only).
import { fileURLToPath } from 'node:url';
import type { IngestMessage, PipelineContext } from '../../src/broker/pipeline.js';
import { compileRoutes, type RouteTable } from '../../src/broker/routes.js';
import { subscriberPseudonymKey } from '../../src/crypto/broker-secrets.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import type { Catalog } from '../../src/catalog/types.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, publicRecords, type PublicKeyRecord, type ServiceKeys } from '../../src/crypto/keys.js';
import { sealEnvelope, type SealInput } from '../../src/envelope/seal.js';
import { DEFAULT_VALIDATION_LIMITS } from '../../src/fhir/limits.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import { streamRandom } from '../envelope/parties.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The frozen clock: every context built here answers this for now(). */
export const NOW = 1_700_000_000_000;
export const SKEW_MS = 5 * 60 * 1000;
export const MAX_BYTES = 256 * 1024;
export const PSEUDONYM_MASTER = new Uint8Array(32).fill(7);

export const SERVICES = [
  'broker',
  'registration',
  'ehr',
  'notification',
  'billing',
  'pharmacy',
  'public-health',
  'directory',
] as const;
export type Service = (typeof SERVICES)[number];

export interface World {
  readonly catalog: Catalog;
  readonly routes: RouteTable;
  readonly keys: Record<Service, ServiceKeys>;
  readonly rings: Record<Service, Keyring>;
  readonly publics: readonly PublicKeyRecord[];
}

let cached: World | undefined;

/** Loads the shipped catalog and makes keys once per test file (call after initCrypto()). */
export function world(): World {
  if (cached !== undefined) return cached;
  const catalog = loadCatalog({ subjects: `${ROOT}subjects`, profiles: `${ROOT}fhir-profiles` });
  const random = streamRandom('broker-tests');
  const keys = Object.fromEntries(SERVICES.map((s) => [s, generateServiceKeys(s, 1, random)])) as Record<
    Service,
    ServiceKeys
  >;
  const publics = SERVICES.flatMap((s) => publicRecords(keys[s]));
  const rings = Object.fromEntries(SERVICES.map((s) => [s, new Keyring(keys[s], publics)])) as Record<Service, Keyring>;
  cached = { catalog, routes: compileRoutes(catalog), keys, rings, publics };
  return cached;
}

/** The shipped routes cut to the subscribers this world holds keys for (Observation's `analytics` is not one of them). */
export function heldRoutes(): RouteTable {
  const held: ReadonlySet<string> = new Set(SERVICES);
  return new Map(
    [...world().routes].map(([type, route]) => [
      type,
      { ...route, subscribers: route.subscribers.filter((s) => held.has(s.service)) },
    ]),
  );
}

export function context(overrides: Partial<PipelineContext> = {}): PipelineContext {
  const w = world();
  return {
    keyring: w.rings.broker,
    signer: w.keys.broker.sign,
    routes: w.routes,
    limits: DEFAULT_VALIDATION_LIMITS,
    maxMessageBytes: MAX_BYTES,
    maxDeliveryBytes: 1024 * 1024 - 4096,
    clockSkewMs: SKEW_MS,
    replayWindowMs: 6 * 60 * 60 * 1000,
    pseudonymizerFor: (service) => pseudonymizer(subscriberPseudonymKey(PSEUDONYM_MASTER, service)),
    now: () => NOW,
    ...overrides,
  };
}

export interface Publication {
  readonly from?: Service;
  readonly id?: string;
  readonly iat?: number;
  readonly typ?: string;
  readonly resource: unknown;
  /** Subject to put it on; default phi.ingest.<from>.<typ> (`_raw` for $raw). */
  readonly subject?: string;
  readonly storedAtMs?: number;
  /** Replaces the signature (undefined = leave it off). */
  readonly signature?: string | undefined;
  readonly seal?: Partial<SealInput>;
}

/** Seals + signs like the SDK: one recipient (the broker), under the KEK the sender shares with it. */
export function publication(p: Publication): IngestMessage {
  const w = world();
  const from = p.from ?? 'registration';
  const typ = p.typ ?? (p.resource as { resourceType: string }).resourceType;
  const sealed = sealEnvelope({
    id: p.id ?? 'msg-0001',
    iss: from,
    iat: p.iat ?? NOW,
    typ,
    resource: p.resource,
    signer: w.keys[from].sign,
    recipients: [{ id: 'broker', kek: w.rings[from].kekFor(w.keys.broker.enc.kid) }],
    ...p.seal,
  });
  return {
    subject: p.subject ?? `phi.ingest.${from}.${typ === '$raw' ? '_raw' : typ}`,
    data: sealed.bytes,
    signature: 'signature' in p ? p.signature : sealed.sig,
    storedAtMs: p.storedAtMs ?? NOW,
  };
}

/** Raw mode, as the SDK sends input it cannot type: the bytes sealed whole. */
export function rawPublication(
  raw: Uint8Array | string,
  more: Omit<Publication, 'resource' | 'typ'> = {},
): IngestMessage {
  const bytes = typeof raw === 'string' ? new TextEncoder().encode(raw) : raw;
  return publication({ ...more, typ: '$raw', resource: { raw: bytes } });
}

/** A synthetic Patient (fictional person); the strings are searched for in ciphertext. */
export function patient(): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    id: 'pat-broker-0001',
    identifier: [{ system: 'urn:example:mrn', value: 'MRN-ZZ-77123' }],
    name: [{ family: 'Vexlander', given: ['Orsolya'] }],
    telecom: [{ system: 'phone', value: '+1-555-0100-4242' }],
    gender: 'female',
    birthDate: '1961-07-04',
    address: [{ line: ['17 Imaginary Row'], city: 'Nowhereville', postalCode: '99501' }],
  };
}

/** Catches a thrown error so a test can assert its code, message and path. */
export function thrown(fn: () => unknown): { code?: unknown; message: string; path?: unknown; name: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: unknown; message: string; path?: unknown; name: string };
  }
  throw new Error('expected a throw');
}
