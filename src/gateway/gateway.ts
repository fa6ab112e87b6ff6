// A partner gateway process's worth of parts (DESIGN.md "Partner gateway"): its own audit chain in PHI_AUDIT, the
// shared jti bucket, the shared token key and the HTTPS server. Stateless between requests — what a second
// instance needs lives in NATS (jti) or in the data dir (the token key) — so gateways run side by side.
import type { KeyFileStore } from '../crypto/key-envelope.js';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { NatsConnection } from 'nats';
import { AuditTrail } from '../audit/trail.js';
import { defaultInstanceId } from '../audit/instance.js';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import type { SigningKeyPair } from '../crypto/keypairs.js';
import type { Logger } from '../log/log.js';
import { ensureGatewayJtiBucket, ensureGatewayRequestsBucket } from '../nats/setup.js';
import type { PublicKeyRecord, ServiceKeys } from '../crypto/keys.js';
import { PhiClient } from '../sdk/client.js';
import { PUBLISH_DEADLINE_DEFAULT_MS } from '../wire/publish.js';
import { RequestStore } from './idempotency.js';
import { JtiStore } from './jti.js';
import { buildGatewayServer } from './server.js';
import { TokenSigner } from './token-signer.js';

export interface GatewayOptions {
  readonly config: BrokerConfig;
  readonly catalog: Catalog;
  /** A connection as the gateway identity: its buckets, its audit chain, each partner's ingest and receipt subjects. */
  readonly nc: NatsConnection;
  /** Signs the audit chain's checkpoints (the broker's Ed25519 key). */
  readonly auditSigner: SigningKeyPair;
  /**
   * The service keys of each partner the gateway publishes for (a partner with a `c` scope), by service id: it seals
   * and signs as that partner (docs/security-model.md, "Partner keys").
   */
  readonly partnerKeys: ReadonlyMap<string, ServiceKeys>;
  /** Public keys of the broker (its receipts' signatures and the key it seals to). */
  readonly peers: readonly PublicKeyRecord[];
  /** Where the shared token key file lives (the data dir's keys/). */
  readonly keysDir: string;
  /** How the token key file is read and created: sealed under the key provider, or plain (the default). */
  readonly keyFiles?: KeyFileStore;
  readonly tls: { readonly certFile: string; readonly keyFile: string };
  readonly logger: Logger;
  /** This gateway's audit chain; default `gw-<host>-<pid>-<random>`. */
  readonly instanceId?: string;
  readonly version?: string;
  readonly now?: () => number;
}

export class Gateway {
  private constructor(
    private readonly app: FastifyInstance,
    private readonly audit: AuditTrail,
    private readonly clients: readonly PhiClient[],
    /** Where it listens, e.g. `https://127.0.0.1:8443`. */
    readonly url: string,
    /** The public base URL partners use. */
    readonly baseUrl: string,
    readonly instanceId: string,
  ) {}

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const { config, logger } = opts;
    const now = opts.now ?? Date.now;
    const instanceId = opts.instanceId ?? `gw-${defaultInstanceId()}`.slice(0, 40);
    const kv = await ensureGatewayJtiBucket(opts.nc);
    const requests = new RequestStore(
      await ensureGatewayRequestsBucket(opts.nc),
      // A claim outlives any publish it covers (the SDK's deadline) before another gateway may take it over.
      PUBLISH_DEADLINE_DEFAULT_MS + 60_000,
      now,
    );
    const signer = await TokenSigner.open(opts.keysDir, opts.keyFiles);
    const clients = new Map<string, PhiClient>();
    for (const [service, keys] of opts.partnerKeys)
      clients.set(
        service,
        await PhiClient.connect({ nc: opts.nc, service, keys, peers: opts.peers, logger: opts.logger }),
      );
    const audit = await AuditTrail.open({
      nc: opts.nc,
      settings: { ...config, instanceId },
      signer: opts.auditSigner,
      logger,
      now,
    });
    let app: FastifyInstance | undefined;
    try {
      const port = config.gatewayPort;
      // With port 0 the base URL is only known once listening; the server reads it per request.
      let baseUrl = config.gatewayBaseUrl ?? `https://localhost:${port}`;
      const holder = { baseUrl };
      app = await buildGatewayServer({
        catalog: opts.catalog,
        tls: { key: readFileSync(opts.tls.keyFile, 'utf8'), cert: readFileSync(opts.tls.certFile, 'utf8') },
        baseUrl: () => holder.baseUrl,
        jti: new JtiStore(kv),
        signer,
        audit,
        logger,
        version: opts.version ?? '0.1.0',
        now,
        inbound: { clients, requests },
      });
      await app.listen({ host: config.gatewayHost, port });
      const address = app.server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      if (config.gatewayBaseUrl === undefined) baseUrl = `https://localhost:${bound}`;
      holder.baseUrl = baseUrl;
      const url = `https://${config.gatewayHost.includes(':') ? `[${config.gatewayHost}]` : config.gatewayHost}:${bound}`;
      logger.info({ event: 'gateway.listening', url, baseUrl, chain: instanceId }, 'partner gateway listening');
      return new Gateway(app, audit, [...clients.values()], url, baseUrl, instanceId);
    } catch (err) {
      await app?.close();
      for (const c of clients.values()) await c.close();
      await audit.close();
      throw err;
    }
  }

  /** Stops taking requests, finishes those in flight, then seals the audit chain. */
  async stop(): Promise<void> {
    await this.app.close();
    for (const c of this.clients) await c.close();
    await this.audit.close();
  }
}
