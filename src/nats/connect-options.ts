// How an identity connects to the mTLS NATS that `phi-broker nats-config` generates: its client certificate
// and key, the CA that verifies the server (RFC 8446 / RFC 5246 mutual authentication), and its own inbox
// prefix — the generated permissions let each identity subscribe only under `_INBOX.<identity>.>`.
import type { ConnectionOptions } from 'nats';
import { inboxPrefix } from '../wire/names.js';

/** PEM files: the CA that signed the server's certificate, and this identity's certificate and private key. */
export interface NatsTlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export function mtlsConnectionOptions(
  servers: string | readonly string[],
  tls: NatsTlsFiles,
  inbox: string,
  name: string,
): ConnectionOptions {
  return {
    servers: typeof servers === 'string' ? servers : [...servers],
    name,
    inboxPrefix: inbox,
    // Node's TLS options pass through nats.js; TLS 1.2 is the floor on this side too.
    tls: { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile, minVersion: 'TLSv1.2' } as NonNullable<
      ConnectionOptions['tls']
    >,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  };
}

/** A catalog service's connection options: its certificate, the CA, and its inbox prefix `_INBOX.<service>`. */
export function serviceConnectionOptions(
  servers: string | readonly string[],
  tls: NatsTlsFiles,
  service: string,
): ConnectionOptions {
  return mtlsConnectionOptions(servers, tls, inboxPrefix(service), service);
}
