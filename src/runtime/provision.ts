// Stream provisioning as the admin identity. Under the generated mTLS permissions (permissions.ts) only the
// admin may create or update streams, so a deployment runs this once (and after a catalog or retention change)
// before the broker starts; the broker then finds every stream, KV bucket and object store as configured and
// only checks them (each ensure* skips the update when nothing differs). Every subscriber's delivery consumers are
// created here too, from the catalog: services may only bind to theirs (docs/security-model.md).
// The very functions the broker's start calls (broker.ts, audit/trail.ts, registry/, access/), so the settings
// never drift between the two.
import type { NatsConnection } from 'nats';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import { ensureAuditStream } from '../audit/setup.js';
import { ensureAccessBuckets } from '../access/desk/store.js';
import { ensureRegistryBucket } from '../registry/store.js';
import {
  ensureBrokerInfrastructure,
  ensureBucketReplicas,
  ensureConsentBucket,
  ensureDeliveryConsumers,
  ensureDisclosureStream,
  ensureGatewayJtiBucket,
  ensureGatewayRequestsBucket,
  ensureGatewayRateBucket,
  ensureGatewaySubscriptionBuckets,
  streamSettings,
} from '../nats/setup.js';
import { jsApi } from '../nats/jetstream-api.js';
import { ensureKeyDirectoryBucket } from '../nats/key-directory.js';
import { KV_BUCKETS, OBJECT_STORES } from '../wire/names.js';
import { loadCatalog } from './catalog-dir.js';

/**
 * Creates or updates every stream, KV bucket, object store and consumer the broker and subscribers use, with
 * `config.replicas` copies (the list: docs/cli.md, `nats-provision`); the catalog is loaded when not given.
 */
export async function provisionStreams(
  adminNc: NatsConnection,
  config: BrokerConfig,
  catalog?: Catalog,
): Promise<void> {
  const { replicas } = config;
  await ensureBrokerInfrastructure(adminNc, streamSettings(config));
  await ensureDeliveryConsumers(
    adminNc,
    catalog ?? loadCatalog({ subjects: config.subjectsDir, profiles: config.profilesDir }),
    replicas,
  );
  await ensureDisclosureStream(adminNc, {
    maxAgeMs: config.disclosureMaxAgeMs,
    maxBytes: config.disclosureMaxBytes,
    duplicateWindowMs: config.duplicateWindowMs,
    replicas,
  });
  await ensureAuditStream(adminNc, {
    maxAgeMs: config.auditMaxAgeMs,
    duplicateWindowMs: config.duplicateWindowMs,
    replicas,
  });
  await ensureConsentBucket(adminNc, replicas);
  await ensureRegistryBucket(adminNc, replicas);
  await ensureAccessBuckets(adminNc, replicas);
  await ensureGatewayJtiBucket(adminNc, replicas);
  await ensureGatewayRequestsBucket(adminNc, replicas);
  await ensureGatewayRateBucket(adminNc, replicas);
  await ensureGatewaySubscriptionBuckets(adminNc, config.deliverMaxAgeMs, replicas);
  await ensureKeyDirectoryBucket(adminNc, replicas);
  // views.kv / views.os bind to an existing bucket unchanged: scale the ones provisioned with another count.
  const jsm = await adminNc.jetstreamManager();
  for (const stream of [
    ...[
      KV_BUCKETS.consent,
      KV_BUCKETS.registry,
      KV_BUCKETS.access,
      KV_BUCKETS.gatewayJti,
      KV_BUCKETS.gatewayRequests,
      KV_BUCKETS.gatewayRate,
      KV_BUCKETS.gatewaySubscriptions,
      KV_BUCKETS.gatewayEvents,
      KV_BUCKETS.keys,
    ].map(jsApi.kvStream),
    jsApi.objStream(OBJECT_STORES.accessAnswers),
  ]) {
    await ensureBucketReplicas(jsm, stream, replicas);
  }
}
