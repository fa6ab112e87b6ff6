// The pure core of catalog loading: catalog files as text in, a frozen Catalog or every problem found out.
// Each file is parsed with positions (yaml-source.ts) and shape-checked (schema.ts) item by item, so a bad
// item does not hide problems elsewhere; then profiles are checked against FHIR R4 and the classification
// (profile-check.ts) and topics against services and profiles. No I/O: load.ts reads the files.
import { isResourceType } from '../fhir/elements.js';
import { checkAccess, parseAccess } from './access.js';
import { checkClassification } from './classification.js';
import { resolveElementPath } from './element-path.js';
import { catalogHash } from './hash.js';
import type { CatalogIssue } from './issues.js';
import { sortIssues } from './issues.js';
import { compilePatients } from './patients.js';
import { checkPartners, type PartnerAt } from './partner.js';
import { checkProfile } from './profile-check.js';
import {
  classificationSchema,
  keyDirectorySchema,
  profileSchema,
  serviceSchema,
  subjectsFileSchema,
  topicSchema,
} from './schema.js';
import type { TopicInput } from './schema.js';
import { DEFAULT_ACCESS_POLICY, DEFAULT_PATIENT_MATCH } from './types.js';
import { BROKER_ID, RESERVED_PARTY_IDS } from '../wire/ids.js';
import type {
  AccessPolicyDef,
  Catalog,
  ClassificationDef,
  KeyDirectoryDef,
  PatientMatchDef,
  ProfileDef,
  ServiceDef,
  SubscriptionDef,
  TopicDef,
} from './types.js';
import { parseYamlSource, zodIssues } from './yaml-source.js';
import type { YamlSource } from './yaml-source.js';

export type CatalogFileKind = 'subjects' | 'profile' | 'classification';

export interface CatalogSourceFile {
  /** Display name used in issues (`subjects/topics.yaml`). */
  readonly file: string;
  readonly kind: CatalogFileKind;
  readonly text: string;
}

export interface CompileResult {
  /** Present exactly when `issues` is empty. */
  readonly catalog: Catalog | undefined;
  readonly issues: readonly CatalogIssue[];
}

interface TopicAt {
  readonly input: TopicInput;
  readonly source: YamlSource;
}

export function compileCatalog(files: readonly CatalogSourceFile[]): CompileResult {
  const issues: CatalogIssue[] = [];
  const parsed: { kind: CatalogFileKind; source: YamlSource }[] = [];
  // A file that cannot be read as a whole hides what it declares: references to it are then not reported.
  const unreadable = new Set<CatalogFileKind>();
  for (const f of [...files].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))) {
    const r = parseYamlSource(f.file, f.text);
    if ('issues' in r) {
      issues.push(...r.issues);
      unreadable.add(f.kind);
    } else parsed.push({ kind: f.kind, source: r.source });
  }

  // Classification first: profiles are checked against it.
  let classification: ClassificationDef | undefined;
  const classificationFiles = files.filter((f) => f.kind === 'classification');
  if (classificationFiles.length === 0)
    issues.push({
      file: '(catalog)',
      path: '',
      message: 'no element classification: expected fhir-profiles/classification.yaml',
    });
  for (const { source } of parsed.filter((p) => p.kind === 'classification')) {
    const r = classificationSchema.safeParse(source.data ?? {});
    if (!r.success) {
      issues.push(...zodIssues(source, [], r.error));
      continue;
    }
    const checked = checkClassification(source, r.data);
    issues.push(...checked.issues);
    if (classification !== undefined)
      issues.push(source.issue([], `a second classification file (expected exactly one)`));
    classification ??= checked.def;
  }

  // Services and topics.
  const services = new Map<string, ServiceDef>();
  const serviceAt = new Map<string, string>();
  const known = new Set<string>();
  const topics = new Map<string, TopicAt>();
  const topicSeen = new Map<string, string>();
  let patients: { def: PatientMatchDef | undefined; file: string } | undefined;
  let accessAt: { requesters: readonly string[] | undefined; source: YamlSource } | undefined;
  const partnersAt: PartnerAt[] = [];
  let keyDirectory: { def: KeyDirectoryDef; file: string } | undefined;
  for (const { source } of parsed.filter((p) => p.kind === 'subjects')) {
    const top = subjectsFileSchema.safeParse(source.data ?? {});
    if (!top.success) {
      issues.push(...zodIssues(source, [], top.error));
      unreadable.add('subjects');
      continue;
    }
    if (top.data.patients !== undefined) {
      if (patients !== undefined)
        issues.push(
          source.issue(['patients'], `a second patients declaration (first in ${patients.file}; expected exactly one)`),
        );
      else {
        const r = compilePatients(source, top.data.patients);
        issues.push(...r.issues);
        patients = { def: r.def, file: source.file };
      }
    }
    if (top.data.access !== undefined) {
      if (accessAt !== undefined)
        issues.push(
          source.issue(
            ['access'],
            `a second access declaration (first in ${accessAt.source.file}; expected exactly one)`,
          ),
        );
      else {
        const r = parseAccess(source, top.data.access);
        issues.push(...r.issues);
        accessAt = { requesters: r.requesters, source };
      }
    }
    if (top.data.keyDirectory !== undefined) {
      const r = keyDirectorySchema.safeParse(top.data.keyDirectory);
      if (keyDirectory !== undefined)
        issues.push(
          source.issue(
            ['keyDirectory'],
            `a second keyDirectory declaration (first in ${keyDirectory.file}; expected exactly one)`,
          ),
        );
      else if (!r.success) issues.push(...zodIssues(source, ['keyDirectory'], r.error));
      else {
        const { kty, crv, x } = r.data.operatorRootKey;
        keyDirectory = { def: Object.freeze({ operatorRootKey: Object.freeze({ kty, crv, x }) }), file: source.file };
      }
    }
    (top.data.services ?? []).forEach((raw, i) => {
      const rawId = (raw as { id?: unknown } | null)?.id;
      if (typeof rawId === 'string') known.add(rawId);
      const r = serviceSchema.safeParse(raw);
      if (!r.success) {
        issues.push(...zodIssues(source, ['services', i], r.error));
        return;
      }
      const s = r.data;
      const where = `${source.file} services[${i}]`;
      if (s.id === BROKER_ID)
        issues.push(
          source.issue(
            ['services', i, 'id'],
            `'${BROKER_ID}' is reserved for the broker itself and cannot be declared`,
          ),
        );
      else if (RESERVED_PARTY_IDS.includes(s.id))
        issues.push(
          source.issue(
            ['services', i, 'id'],
            `'${s.id}' is reserved for an audit-signing key (docs/audit.md) and cannot be declared`,
          ),
        );
      else if (serviceAt.has(s.id))
        issues.push(
          source.issue(
            ['services', i, 'id'],
            `duplicate service id '${s.id}' (first declared at ${serviceAt.get(s.id) ?? '?'})`,
          ),
        );
      else {
        serviceAt.set(s.id, where);
        if (s.partner !== undefined)
          partnersAt.push({ service: s.id, external: s.external, input: s.partner, source, index: i });
        services.set(
          s.id,
          Object.freeze({
            id: s.id,
            owner: s.owner,
            description: s.description,
            classification: s.classification,
            external: s.external,
            ...(s.accountDisclosures === undefined ? {} : { accountDisclosures: s.accountDisclosures }),
            keyDir: s.keyDir ?? `keys/${s.id}`,
            file: source.file,
          }),
        );
      }
    });
    for (const [type, raw] of Object.entries(top.data.topics ?? {})) {
      const first = topicSeen.get(type);
      if (first !== undefined) {
        issues.push(source.issue(['topics', type], `duplicate topic ${type} (first declared in ${first})`));
        continue;
      }
      topicSeen.set(type, source.file);
      if (!isResourceType(type)) {
        const r = resolveElementPath(type);
        issues.push(source.issue(['topics', type], r.ok ? `'${type}' is not a FHIR R4 resource type` : r.error));
        continue;
      }
      const r = topicSchema.safeParse(raw);
      if (!r.success) issues.push(...zodIssues(source, ['topics', type], r.error));
      else topics.set(type, { input: r.data, source });
    }
  }

  // Profiles.
  const profiles = new Map<string, ProfileDef>();
  const knownProfiles = new Set<string>();
  for (const { source } of parsed.filter((p) => p.kind === 'profile')) {
    const rawId = (source.data as { id?: unknown } | null)?.id;
    if (typeof rawId === 'string') knownProfiles.add(rawId);
    const r = profileSchema.safeParse(source.data ?? {});
    if (!r.success) {
      issues.push(...zodIssues(source, [], r.error));
      if (typeof rawId !== 'string') unreadable.add('profile');
      continue;
    }
    const base = source.file
      .split('/')
      .pop()
      ?.replace(/\.ya?ml$/, '');
    if (base !== r.data.id)
      issues.push(source.issue(['id'], `profile id '${r.data.id}' must match its file name (${base ?? '?'}.yaml)`));
    const first = profiles.get(r.data.id);
    if (first !== undefined) {
      issues.push(source.issue(['id'], `duplicate profile id '${r.data.id}' (first declared in ${first.file})`));
      continue;
    }
    const checked = checkProfile(source, r.data, classification);
    issues.push(...checked.issues);
    profiles.set(r.data.id, checked.def);
  }

  // Topics against services and profiles.
  const isService = (id: string): boolean => known.has(id) || unreadable.has('subjects');
  const isProfile = (id: string): boolean => knownProfiles.has(id) || unreadable.has('profile');
  const compiledTopics = new Map<string, TopicDef>();
  for (const [type, { input, source }] of topics) {
    const base = ['topics', type];
    const seenPublishers = new Set<string>();
    input.publishers.forEach((p, i) => {
      if (seenPublishers.has(p)) issues.push(source.issue([...base, 'publishers', i], `'${p}' is listed twice`));
      seenPublishers.add(p);
      if (p === BROKER_ID)
        issues.push(
          source.issue([...base, 'publishers', i], `'${BROKER_ID}' is the broker itself, not a publishing service`),
        );
      else if (!isService(p))
        issues.push(
          source.issue([...base, 'publishers', i], `'${p}' is not a declared service (expected an id from services)`),
        );
    });
    const seenSubscribers = new Map<string, number>();
    input.subscribers.forEach((s, i) => {
      const at = [...base, 'subscribers', i];
      const earlier = seenSubscribers.get(s.service);
      if (earlier !== undefined)
        issues.push(
          source.issue(
            [...at, 'service'],
            `'${s.service}' already subscribes to ${type} (subscribers[${earlier}]): one subscription per service and type`,
          ),
        );
      else seenSubscribers.set(s.service, i);
      const service = services.get(s.service);
      if (!isService(s.service))
        issues.push(
          source.issue([...at, 'service'], `'${s.service}' is not a declared service (expected an id from services)`),
        );
      const profile = profiles.get(s.profile);
      if (profile === undefined) {
        if (!isProfile(s.profile))
          issues.push(
            source.issue(
              [...at, 'profile'],
              `unknown profile '${s.profile}': expected the id of a profile in fhir-profiles/`,
            ),
          );
        return;
      }
      if (profile.resourceType !== type)
        issues.push(
          source.issue([...at, 'profile'], `profile '${s.profile}' is for ${profile.resourceType}, not ${type}`),
        );
      if (service !== undefined && service.classification !== 'phi' && !profile.deidentified) {
        issues.push(
          source.issue(
            [...at, 'profile'],
            `service '${s.service}' is classified '${service.classification}': it may only receive through deidentified profiles, and '${s.profile}' is not`,
          ),
        );
      }
    });
    const subscribers: SubscriptionDef[] = input.subscribers.map((s) =>
      Object.freeze({ service: s.service, profile: s.profile, purpose: s.purpose }),
    );
    compiledTopics.set(
      type,
      Object.freeze({
        resourceType: type,
        publishers: Object.freeze([...input.publishers]),
        subscribers: Object.freeze(subscribers),
        file: source.file,
      }),
    );
  }

  let access: AccessPolicyDef = DEFAULT_ACCESS_POLICY;
  if (accessAt?.requesters !== undefined) {
    const r = checkAccess(accessAt.source, accessAt.requesters, isService);
    issues.push(...r.issues);
    access = r.def;
  }

  // Partners against the compiled topics: their scopes never wider than what they publish and receive.
  const partners = checkPartners(partnersAt, compiledTopics);
  issues.push(...partners.issues);
  for (const [id, partner] of partners.defs) {
    const service = services.get(id);
    if (service !== undefined) services.set(id, Object.freeze({ ...service, partner }));
  }

  if (issues.length > 0 || classification === undefined)
    return { catalog: undefined, issues: Object.freeze(sortIssues(issues)) };
  const body = {
    services: frozenMap(services),
    topics: frozenMap(compiledTopics),
    profiles: frozenMap(profiles),
    classification,
    patients: patients?.def ?? DEFAULT_PATIENT_MATCH,
    access,
    ...(keyDirectory === undefined ? {} : { keyDirectory: keyDirectory.def }),
  };
  const catalog: Catalog = Object.freeze({ ...body, hash: catalogHash(body) });
  return { catalog, issues: Object.freeze([]) };
}

/** A Map in key order whose mutators throw (Object.freeze does not stop Map.set). */
function frozenMap<V>(source: ReadonlyMap<string, V>): ReadonlyMap<string, V> {
  const map = new Map([...source].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const refuse = (): never => {
    throw new TypeError('the catalog is frozen');
  };
  Object.defineProperties(map, { set: { value: refuse }, delete: { value: refuse }, clear: { value: refuse } });
  return Object.freeze(map);
}
