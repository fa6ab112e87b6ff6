// Every resource in ../shared/fhir-examples (HL7 R4 specification examples, and every entry of the
// Synthea bundles, published the way a service would: as a Bundle split into its entries) goes through a
// real broker to each subscriber of its type. Each delivery must equal the subscriber's projection of
// what was published (computed here with the subscriber's profile and pseudonym key), and must contain
// no element outside that profile. Rejections are listed with their reason (docs/validation.md).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscriberPseudonymKey } from '../../src/crypto/broker-secrets.js';
import { splitBundle } from '../../src/fhir/bundle.js';
import { compileProfile } from '../../src/projection/compile.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import type { Delivered, PhiClient, PublishResult } from '../../src/sdk/client.js';
import { ROOT, Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

const EXAMPLES = process.env['PHI_BROKER_FHIR_EXAMPLES'] ?? join(ROOT, '../shared/fhir-examples');
const present = existsSync(EXAMPLES);

/** Files expected to be rejected as a whole, with the reason (see docs/validation.md). */
const EXPECTED_REJECTIONS: Record<string, { code: string; path: string; reason: string }> = {
  'json-edge-cases.json': {
    code: 'E_FHIR_INVALID',
    path: 'Patient.id',
    reason: 'a Patient with no id: the broker names every resource <Type>/<id> (docs/validation.md)',
  },
};

describe.skipIf(!present)(`fhir-examples through the broker (${EXAMPLES})`, () => {
  let stack: TestStack;
  const clients = new Map<string, PhiClient>();
  const delivered = new Map<string, Delivered[]>(); // message id → deliveries
  const waiter = new Waiter();
  let total = 0;

  async function client(service: string): Promise<PhiClient> {
    let c = clients.get(service);
    if (c === undefined) {
      c = await stack.client(service, { publishDeadlineMs: 120_000 });
      clients.set(service, c);
    }
    return c;
  }

  beforeAll(async () => {
    stack = await startTestStack({ config: { maxMessageBytes: 4 * 1024 * 1024 } });
    const subscribers = new Set<string>();
    for (const t of stack.catalog.topics.values()) for (const s of t.subscribers) subscribers.add(s.service);
    for (const service of subscribers) {
      const c = await client(service);
      await c.subscribe('*', (d) => {
        const list = delivered.get(d.provenance.messageId) ?? [];
        list.push(d);
        delivered.set(d.provenance.messageId, list);
        total += 1;
        waiter.signal();
      });
    }
  });

  afterAll(async () => {
    await stack?.stop();
  });

  function publisherOf(type: string): string {
    const topic = stack.catalog.topics.get(type);
    const publisher = topic?.publishers[0];
    if (publisher === undefined) throw new Error(`the example catalog has no publisher for ${type}`);
    return publisher;
  }

  async function checkDeliveries(
    resource: Record<string, unknown>,
    result: PublishResult,
    label: string,
  ): Promise<void> {
    expect(result.status, `${label}: ${JSON.stringify(result)}`).toBe('accepted');
    if (result.status !== 'accepted') return;
    const topic = stack.catalog.topics.get(String(resource['resourceType']));
    expect(result.deliveries).toBe(topic?.subscribers.length);
    await waiter.until(
      () => (delivered.get(result.id)?.length ?? 0) === result.deliveries,
      60_000,
      `deliveries of ${label}`,
    );
    for (const sub of topic?.subscribers ?? []) {
      const got = delivered
        .get(result.id)
        ?.filter(
          (d) =>
            d.provenance.purpose === sub.purpose &&
            d.provenance.profile === stack.catalog.profiles.get(sub.profile)?.url,
        );
      expect(got?.length, `${label} → ${sub.service}`).toBeGreaterThanOrEqual(1);
      const profile = stack.catalog.profiles.get(sub.profile);
      if (profile === undefined) throw new Error('unreachable');
      const expected = compileProfile(profile)(resource, {
        pseudonymize: pseudonymizer(subscriberPseudonymKey(stack.secrets.pseudonymKey, sub.service)),
      });
      expect(
        got?.map((d) => d.resource),
        `${label} → ${sub.service}`,
      ).toContainEqual(expected);
    }
  }

  const hl7Dir = join(EXAMPLES, 'hl7');
  const hl7Files = present
    ? readdirSync(hl7Dir)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
  it.each(hl7Files)('hl7/%s', async (file) => {
    const json = JSON.parse(readFileSync(join(hl7Dir, file), 'utf8')) as Record<string, unknown>;
    const type = String(json['resourceType']);
    const c = await client(publisherOf(type));
    if (type === 'Bundle' && (json['type'] === 'transaction' || json['type'] === 'batch')) {
      const parts = splitBundle(json);
      const results = await c.publishBundle(json);
      for (const [i, part] of parts.entries()) {
        const r = results[i];
        if (r === undefined) throw new Error('missing result');
        if (part.ok)
          await checkDeliveries(part.resource as unknown as Record<string, unknown>, r, `${file} entry ${i}`);
        else expect(r).toMatchObject({ status: 'rejected', code: 'E_BUNDLE_INVALID', path: part.path });
      }
      return;
    }
    const result = await c.publish(json);
    const reason = EXPECTED_REJECTIONS[file];
    if (reason !== undefined) {
      expect(result, reason.reason).toMatchObject({ status: 'rejected', code: reason.code, path: reason.path });
      return;
    }
    await checkDeliveries(json, result, file);
  });

  const syntheaDir = join(EXAMPLES, 'synthea');
  const syntheaFiles = present
    ? readdirSync(syntheaDir)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
  it.each(syntheaFiles)('synthea/%s: every entry, published as a split Bundle', async (file) => {
    const bundle = JSON.parse(readFileSync(join(syntheaDir, file), 'utf8')) as Record<string, unknown>;
    const parts = splitBundle(bundle);
    // Each entry goes out from the service that publishes its type (as a hospital's services would).
    const byPublisher = new Map<string, number[]>();
    for (const [i, p] of parts.entries()) {
      expect(p.ok, `${file} entry ${i}`).toBe(true);
      if (!p.ok) continue;
      const pub = publisherOf(p.resource.resourceType);
      byPublisher.set(pub, [...(byPublisher.get(pub) ?? []), i]);
    }
    const results = new Map<number, PublishResult>();
    for (const [pub, indexes] of byPublisher) {
      const c = await client(pub);
      const rs = await Promise.all(indexes.map((i) => c.publish((parts[i] as { resource: unknown }).resource)));
      indexes.forEach((i, k) => results.set(i, rs[k] as PublishResult));
    }
    for (const [i, p] of parts.entries()) {
      if (p.ok)
        await checkDeliveries(
          p.resource as unknown as Record<string, unknown>,
          results.get(i) as PublishResult,
          `${file} entry ${i} (${p.resource.resourceType})`,
        );
    }
    expect(total).toBeGreaterThan(0);
  });
});

describe.skipIf(present)('fhir-examples', () => {
  it.skip(`skipped: ${EXAMPLES} is absent (set PHI_BROKER_FHIR_EXAMPLES to run these tests)`, () => undefined);
});
