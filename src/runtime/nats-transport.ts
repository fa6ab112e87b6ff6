// How `up` and `demo` reach NATS (45 CFR 164.312(e)(1) transmission security, 164.312(d) entity authentication):
// mutual TLS unless told otherwise. Without NATS_URL, the embedded nats-server on the generated mTLS config
// (embedded-mtls.ts); with NATS_URL, that server with the TLS dir from `natsTlsDir` (PHI_BROKER_NATS_TLS_DIR).
// Plaintext only with `--insecure-plaintext`, which says so loudly on stderr — the development escape hatch.
import type { NatsConnection } from 'nats';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import { BrokerError } from '../wire/errors.js';
import { identityInbox } from '../nats/permissions.js';
import type { Logger } from '../log/log.js';
import type { Identity } from '../tls/identity.js';
import { tlsLayout } from '../tls/store.js';
import type { DataDirLock } from './data-dir-lock.js';
import { startEmbeddedMtlsNats, startEmbeddedPlaintextNats, type EmbeddedNats } from './embedded-nats.js';
import { connectNats } from './data-dir.js';

export interface NatsTransport {
  readonly url: string;
  /** The certificates every identity connects with; undefined for plaintext (`--insecure-plaintext`). */
  readonly tlsDir: string | undefined;
  /** The embedded server this process started and supervises, if any. */
  readonly server: EmbeddedNats | undefined;
  /** Connects as an identity over mTLS (its certificate and inbox prefix), or plaintext. */
  connect(identity: Identity, name: string): Promise<NatsConnection>;
}

export const INSECURE_PLAINTEXT_WARNING =
  'WARNING: --insecure-plaintext: NATS without TLS and without client certificates — no transport encryption, no per-service identity, no subject permissions; PHI ciphertext and broker signatures travel in the clear. Local development only.';

/** The mTLS default, or plaintext when `insecurePlaintext` (warned on stderr); refuses a NATS_URL without a TLS dir. */
export async function openNatsTransport(
  config: BrokerConfig,
  catalog: Catalog,
  opts: {
    readonly insecurePlaintext: boolean;
    readonly port?: number;
    /** The data-dir lock (runtime/data-dir-lock.ts): required to run the embedded server, i.e. without NATS_URL. */
    readonly lock?: DataDirLock;
    readonly logger?: Logger;
  },
): Promise<NatsTransport> {
  const embedded = () => {
    if (opts.lock === undefined)
      throw new TypeError('openNatsTransport: the embedded nats-server needs the data-dir lock');
    return {
      lock: opts.lock,
      ...(opts.port === undefined ? {} : { port: opts.port }),
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    };
  };
  if (opts.insecurePlaintext) {
    if (config.natsTlsDir !== undefined) {
      throw new BrokerError(
        'E_CONFIG_INVALID',
        'natsTlsDir: set (PHI_BROKER_NATS_TLS_DIR) together with --insecure-plaintext; give one or the other',
      );
    }
    process.stderr.write(`${INSECURE_PLAINTEXT_WARNING}\n`);
    const server = config.natsUrl === undefined ? await startEmbeddedPlaintextNats(config, embedded()) : undefined;
    const url = config.natsUrl ?? server?.url ?? '';
    return { url, tlsDir: undefined, server, connect: (_identity, name) => connectNats(url, name) };
  }
  let server: EmbeddedNats | undefined;
  let url: string;
  let tlsDir: string;
  if (config.natsUrl === undefined) {
    const mtls = await startEmbeddedMtlsNats(config, catalog, embedded());
    server = mtls;
    url = mtls.url;
    tlsDir = mtls.tlsDir;
  } else if (config.natsTlsDir === undefined) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      'natsTlsDir: NATS_URL is set without a TLS dir; set PHI_BROKER_NATS_TLS_DIR to the certificates (`phi-broker certs init`, the server on `phi-broker nats-config`), or pass --insecure-plaintext for local development only',
    );
  } else {
    url = config.natsUrl;
    tlsDir = config.natsTlsDir;
  }
  const files = tlsLayout(tlsDir);
  return {
    url,
    tlsDir,
    server,
    connect: (identity, name) =>
      connectNats(url, name, { files: files.identity(identity), inbox: identityInbox(identity) }),
  };
}
