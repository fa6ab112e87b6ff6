// A partner gateway process's worth of parts (DESIGN.md "Partner gateway"): its own audit chain in PHI_AUDIT, the
// shared jti bucket, the shared token key and the HTTPS server. Stateless between requests — what a second
// instance needs lives in NATS (jti) or in the data dir (the token key) — so gateways run side by side.
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { NatsConnection } from 'nats';
import { AuditTrail } from '../audit/trail.js';
import { defaultInstanceId } from '../audit/instance.js';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import type { SigningKeyPair } from '../crypto/keypairs.js';
import type { Logger } from '../log/log.js';
import { ensureGatewayJtiBucket } from '../nats/setup.js';
import { JtiStore } from './jti.js';
import { buildGatewayServer } from './server.js';
import { TokenSigner } from './token-signer.js';

export interface GatewayOptions {
  readonly config: BrokerConfig;
  readonly catalog: Catalog;
  /** A connection allowed the jti bucket and an audit chain (the broker identity, in this increment). */
  readonly nc: NatsConnection;
  /** Signs the audit chain's checkpoints (the broker's Ed25519 key). */
  readonly auditSigner: SigningKeyPair;
  /** Where the shared token key file lives (the data dir's keys/). */
  readonly keysDir: string;
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
    const signer = await TokenSigner.open(opts.keysDir);
    const audit = await AuditTrail.open({
      nc: opts.nc,
      settings: { ...config, instanceId },
      signer: opts.auditSigner,
      logger,
      now,
      recorder: 'gateway',
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
      });
      await app.listen({ host: config.gatewayHost, port });
      const address = app.server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      if (config.gatewayBaseUrl === undefined) baseUrl = `https://localhost:${bound}`;
      holder.baseUrl = baseUrl;
      const url = `https://${config.gatewayHost.includes(':') ? `[${config.gatewayHost}]` : config.gatewayHost}:${bound}`;
      logger.info({ event: 'gateway.listening', url, baseUrl, chain: instanceId }, 'partner gateway listening');
      return new Gateway(app, audit, url, baseUrl, instanceId);
    } catch (err) {
      await app?.close();
      await audit.close();
      throw err;
    }
  }

  /** Stops taking requests, finishes those in flight, then seals the audit chain. */
  async stop(): Promise<void> {
    await this.app.close();
    await this.audit.close();
  }
}
