// The certificates a test server runs with (mutual TLS, src/tls/store.ts layout), issued once per vitest run and
// per distinct service list instead of once per server. Issuing a set — the CA, the server certificate, the broker,
// admin, auditor and every service, and the test inspector — costs ~1.3 s of CPU (ECDSA P-256 keys plus the
// @peculiar/x509 import), and nearly every harness file runs the shipped catalog's identities.
//
// How: test/helpers/global-setup.ts makes one empty cache directory per run, hands its path to the workers (vitest
// `provide`/`inject`, key `testPkiCache`) and removes it at teardown. The first server that needs a service list
// issues the set with src/tls `issueAll` into a private temp dir inside the cache and renames it into place as
// `<sha256 of the list, the hosts and the 6-hour window>`: a rename is atomic, so another worker sees a whole set or
// none; two workers racing for the same list both issue and the loser drops its copy (at most once per worker).
// Every server then gets its own copy of the files — copies, not links, so a test that rotates or deletes the
// certificates in its server's dir (`issueAll` again, `certs rotate`) leaves the cache and the other servers alone —
// with the modes issueAll set (directories 0700, private keys 0600). The server certificate names localhost and
// 127.0.0.1 (DEFAULT_SERVER_HOSTS), where every test server listens. The 6-hour window keeps a long watch session
// from handing out a set near the end of its 24-hour life.
// Without the cache (a vitest config without the global setup) each server issues its own set, as before.
// Tests of issuing, expiry, rotation and removed services issue what they test themselves with src/tls
// (test/tls/*, the strays in test/e2e/mtls.test.ts, the rotation in test/e2e/mtls-rotation.test.ts, CLI `certs`).
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { inject } from 'vitest';
import type { Identity, IdentityKind } from '../../src/tls/identity.js';
import {
  DEFAULT_LEAF_LIFETIME_MS,
  DEFAULT_SERVER_HOSTS,
  issueAll,
  readCa,
  tlsLayout,
  type TlsLayout,
} from '../../src/tls/store.js';

/** The test-only identity (OU=test): every subject, to tap, forge and inspect. Never part of a generated config. */
export const TEST_INSPECTOR: Identity = { kind: 'test' as IdentityKind, id: 'inspector' };

const WINDOW_MS = 6 * 3_600_000;

export interface TestCertificateOptions {
  /** Also the test inspector's certificate (servers whose config has the inspector user). */
  readonly inspector: boolean;
}

/** The full set for `services` in `dir`: issueAll (CA created) and the inspector's certificate from the same CA. */
async function issueSet(dir: string, services: readonly string[], inspector: boolean): Promise<TlsLayout> {
  const layout = tlsLayout(dir);
  const now = Date.now();
  await issueAll(layout, services, { now, createCaIfMissing: true });
  if (inspector) {
    // issueAll loaded certificates.js already; the dynamic import keeps @peculiar/x509 out of workers that only copy.
    const { issueClientCertificate } = await import('../../src/tls/certificates.js');
    const cert = await issueClientCertificate(readCa(layout), TEST_INSPECTOR, {
      now,
      lifetimeMs: DEFAULT_LEAF_LIFETIME_MS,
    });
    const files = layout.identity(TEST_INSPECTOR);
    writeFileSync(files.keyFile, cert.keyPem, { mode: 0o600 });
    writeFileSync(files.certFile, cert.certPem);
  }
  return layout;
}

function cacheRoot(): string | undefined {
  const root = inject('testPkiCache') as string | undefined;
  return root !== undefined && existsSync(root) ? root : undefined;
}

function cacheKey(services: readonly string[]): string {
  const what = {
    services: [...services].sort(),
    // The deployment identities issueAll writes beside the services: a set cached before one was added lacks it.
    identities: ['broker', 'admin', 'operator', 'auditor', 'gateway'],
    hosts: DEFAULT_SERVER_HOSTS,
    window: Math.floor(Date.now() / WINDOW_MS),
  };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 32);
}

/** The cached set for `services` (inspector included), issuing it first if no worker has yet. */
async function cachedSet(root: string, services: readonly string[]): Promise<string> {
  const entry = join(root, cacheKey(services));
  if (existsSync(entry)) return entry;
  const scratch = mkdtempSync(join(root, 'issuing-'));
  try {
    await issueSet(join(scratch, 'tls'), services, true);
    try {
      renameSync(join(scratch, 'tls'), entry);
    } catch (err) {
      // Another worker published the same list first (rename onto a non-empty directory fails): use theirs.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return entry;
}

const isInspectorFile = (path: string): boolean => /^test\.(cert|key)\.pem$/.test(basename(path));

/**
 * Certificates for a test server and its clients in `dir` (which must not exist yet): the CA, the server
 * certificate, broker, admin, auditor, one per service in `services`, and the inspector's when asked.
 */
export async function testCertificates(
  dir: string,
  services: readonly string[],
  options: TestCertificateOptions,
): Promise<TlsLayout> {
  const root = cacheRoot();
  if (root === undefined) return issueSet(dir, services, options.inspector);
  const entry = await cachedSet(root, services);
  // cpSync keeps each file's and directory's mode (0600 keys, 0700 directories).
  cpSync(entry, dir, {
    recursive: true,
    errorOnExist: true,
    force: false,
    filter: (src) => options.inspector || !isInspectorFile(src),
  });
  return tlsLayout(dir);
}
