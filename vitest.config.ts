import { defineConfig } from 'vitest/config';

// Unit tests run without a server; *.int.test.ts and test/e2e/ start their own nats-server (one per file).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // One certificate cache per run for the test servers (test/helpers/test-pki.ts), removed at the end.
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Stray console output from src/ is a bug (pino only): fail the test that caused it.
    onConsoleLog(_log, type) {
      return type === 'stderr' ? true : undefined;
    },
  },
});
