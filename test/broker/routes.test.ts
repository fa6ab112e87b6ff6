// Route tables compiled from the shipped catalog (src/broker/routes.ts): publishers and subscribers per type,
// each profile compiled once and shared.
import { beforeAll, describe, expect, it } from 'vitest';
import { compileRoutes, subscriberServices } from '../../src/broker/routes.js';
import type { Catalog } from '../../src/catalog/types.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { world } from './fixtures.js';

beforeAll(async () => {
  await initCrypto();
});

describe('compileRoutes', () => {
  it('has one route per catalog topic with its publishers and subscribers in catalog order', () => {
    const { catalog, routes } = world();
    expect([...routes.keys()].sort()).toEqual([...catalog.topics.keys()].sort());
    for (const topic of catalog.topics.values()) {
      const r = routes.get(topic.resourceType);
      expect([...(r?.publishers ?? [])].sort()).toEqual([...topic.publishers].sort());
      expect(r?.subscribers.map((s) => [s.service, s.profileId, s.purpose, s.profileUrl])).toEqual(
        topic.subscribers.map((s) => [s.service, s.profile, s.purpose, catalog.profiles.get(s.profile)?.url]),
      );
    }
  });

  it('compiles a profile once: two subscriptions to it share one projector', () => {
    const coverage = world().routes.get('Coverage')?.subscribers ?? [];
    const ehr = coverage.find((s) => s.service === 'ehr');
    const billing = coverage.find((s) => s.service === 'billing');
    expect(ehr?.profileId).toBe('coverage-full');
    expect(billing?.profileId).toBe('coverage-full');
    expect(ehr?.project).toBe(billing?.project);
  });

  it('lists every subscriber service once, sorted', () => {
    const { catalog, routes } = world();
    const expected = [
      ...new Set([...catalog.topics.values()].flatMap((t) => t.subscribers.map((s) => s.service))),
    ].sort();
    expect(subscriberServices(routes)).toEqual(expected);
  });

  it('a catalog naming a profile it does not hold is a caller mistake (TypeError)', () => {
    const { catalog } = world();
    const broken: Catalog = { ...catalog, profiles: new Map() };
    expect(() => compileRoutes(broken)).toThrow(TypeError);
  });
});
