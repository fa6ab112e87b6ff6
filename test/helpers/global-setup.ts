// vitest globalSetup (vitest.config.ts): once per run, in the main process. Makes the empty directory the test
// servers' certificates are cached in (test/helpers/test-pki.ts: issued on first need, once per service list) and
// hands its path to the workers; removes it, keys included, when the run ends. Issues nothing itself, so a run of
// unit tests alone pays nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's certificate cache directory (0700, removed at teardown). */
    testPkiCache: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-test-pki-'));
  project.provide('testPkiCache', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
