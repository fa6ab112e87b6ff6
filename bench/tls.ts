// The bench's mutual TLS, as users run it: the development PKI `up` issues (src/tls, `certs init`), the
// nats-server config `phi-broker nats-config` generates (TLS required, client certificates verified and mapped to
// users with the default-deny permissions of src/nats/permissions.ts), and each process connecting as its own
// identity. The baselines (raw JetStream passthrough, core NATS) connect over the same TLS as one more user,
// `bench`, allowed only the baselines' own subjects and the JetStream API: the server checks permissions for them
// as it does for the broker's clients.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import type { Catalog } from '../src/catalog/types.js';
import { identityInbox, natsPermissions, type IdentityPermissions } from '../src/nats/permissions.js';
import { natsServerConfig } from '../src/nats/server-config.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../src/nats/server.js';
import { connectNats } from '../src/runtime/data-dir.js';
import { natsUser, serviceIdentity, type Identity } from '../src/tls/identity.js';
import { issueAll, tlsLayout } from '../src/tls/store.js';

/** The baselines' identity (a service certificate named `bench`; no catalog lists it). */
export const BENCH_IDENTITY: Identity = serviceIdentity('bench');

function benchPermissions(): IdentityPermissions {
  const inbox = identityInbox(BENCH_IDENTITY);
  return {
    identity: BENCH_IDENTITY,
    user: natsUser(BENCH_IDENTITY),
    inboxPrefix: inbox,
    publish: { allow: ['bench.>', '$JS.API.>', '$JS.ACK.>'], deny: [] },
    subscribe: { allow: ['bench.>', `${inbox}.>`], deny: [] },
  };
}

/** Issues the CA, the server certificate and a certificate for the broker, admin and every service into `dir`. */
export async function issueBenchCertificates(dir: string, services: readonly string[]): Promise<string> {
  await issueAll(tlsLayout(dir), [...services, BENCH_IDENTITY.id], { now: Date.now(), createCaIfMissing: true });
  return dir;
}

/** A fresh nats-server in `dir`: over mTLS with `catalog`'s users (and `bench`) when `tlsDir` is given, else plaintext. */
export async function startBenchNats(
  dir: string,
  catalog: Catalog,
  tlsDir: string | undefined,
  maxPayload: number,
  profilePort?: number,
): Promise<RunningNatsServer> {
  const profile = profilePort === undefined ? {} : { profilePort };
  if (tlsDir === undefined) return startNatsServer({ dir, maxPayload, ...profile });
  const layout = tlsLayout(tlsDir);
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'nats-server.conf');
  writeFileSync(
    configFile,
    natsServerConfig(catalog, {
      tls: { caFile: layout.ca.certFile, certFile: layout.server.certFile, keyFile: layout.server.keyFile },
      storeDir: join(dir, 'jetstream'),
      host: '127.0.0.1',
      port,
      maxPayload,
      identities: [...natsPermissions(catalog), benchPermissions()],
    }),
  );
  return startNatsServer({ dir, configFile, port, ...profile });
}

/** Connects as `identity` over mTLS when `tlsDir` is given, else plaintext. */
export function connectBench(
  url: string,
  name: string,
  identity: Identity,
  tlsDir: string | undefined,
): Promise<NatsConnection> {
  if (tlsDir === undefined) return connectNats(url, name);
  return connectNats(url, name, { files: tlsLayout(tlsDir).identity(identity), inbox: identityInbox(identity) });
}
