import { configDefaults, defineConfig } from 'vitest/config';

// Unit tests run without a server; *.int.test.ts and test/e2e/ start their own nats-server (one per file).
// Two groups, one after the other: the files that load the machine on purpose (the bench, the cluster and rotation
// fault runs) one at a time, then every other file two at a time (most of them wait on nats-server and child
// processes, so two share this 2-core machine's CPUs without starving each other). `PHI_TEST_UNIT=1` (npm run
// test:unit) runs the unit tests only.
const SERIAL = ['test/bench/quick.int.test.ts', 'test/e2e/cluster-faults.test.ts', 'test/e2e/mtls-rotation.test.ts'];
const UNIT_ONLY = process.env['PHI_TEST_UNIT'] === '1';
const SERVER_TESTS = ['test/e2e/**', '**/*.int.test.ts'];

export default defineConfig({
  test: {
    pool: 'forks',
    // One certificate cache per run for the test servers (test/helpers/test-pki.ts), removed at the end.
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Stray console output from src/ is a bug (pino only): fail the test that caused it.
    onConsoleLog(_log, type) {
      return type === 'stderr' ? true : undefined;
    },
    projects: [
      ...(UNIT_ONLY
        ? []
        : [
            {
              extends: true as const,
              test: { name: 'serial', include: SERIAL, maxWorkers: 1, sequence: { groupOrder: 0 } },
            },
          ]),
      {
        extends: true,
        test: {
          name: 'parallel',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...SERIAL, ...(UNIT_ONLY ? SERVER_TESTS : [])],
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
