// Compiles the catalog once into per-type routing tables: who may publish a type, and for each
// subscriber its compiled minimum-necessary projector (45 CFR 164.502(b), 164.514(d)), purpose of use
// and profile URL. The per-message path only does map lookups.
import type { Catalog, PurposeOfUse } from '../catalog/types.js';
import { compileProfile, type Projector } from '../projection/compile.js';

export interface SubscriberRoute {
  readonly service: string;
  readonly profileId: string;
  readonly profileUrl: string;
  readonly purpose: PurposeOfUse;
  readonly project: Projector;
}

export interface TypeRoute {
  readonly resourceType: string;
  readonly publishers: ReadonlySet<string>;
  readonly subscribers: readonly SubscriberRoute[];
}

export type RouteTable = ReadonlyMap<string, TypeRoute>;

export function compileRoutes(catalog: Catalog): RouteTable {
  const projectors = new Map<string, Projector>();
  const projectorFor = (profileId: string): { project: Projector; url: string } => {
    const profile = catalog.profiles.get(profileId);
    if (profile === undefined) throw new TypeError(`catalog names unknown profile ${profileId}`);
    let project = projectors.get(profileId);
    if (project === undefined) {
      project = compileProfile(profile);
      projectors.set(profileId, project);
    }
    return { project, url: profile.url };
  };
  const table = new Map<string, TypeRoute>();
  for (const topic of catalog.topics.values()) {
    table.set(topic.resourceType, {
      resourceType: topic.resourceType,
      publishers: new Set(topic.publishers),
      subscribers: topic.subscribers.map((s) => {
        const { project, url } = projectorFor(s.profile);
        return { service: s.service, profileId: s.profile, profileUrl: url, purpose: s.purpose, project };
      }),
    });
  }
  return table;
}

/** Every service that subscribes to anything: the broker creates their durable delivery consumers at start. */
export function subscriberServices(routes: RouteTable): string[] {
  const out = new Set<string>();
  for (const route of routes.values()) for (const s of route.subscribers) out.add(s.service);
  return [...out].sort();
}
