// Broker configuration (src/config/config.ts): every default pinned, every bad value refused with E_CONFIG_INVALID naming the
// setting, the result frozen (STYLE habit 3).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_ENV, configFromEnv, parseConfig, type BrokerConfigInput } from '../../src/config/config.js';
import { BrokerError } from '../../src/wire/errors.js';

const MiB = 1024 * 1024;
const MINUTE = 60 * 1000;
const DAY = 24 * 60 * MINUTE;

function configError(input: unknown): BrokerError {
  try {
    parseConfig(input as BrokerConfigInput);
  } catch (e) {
    if (e instanceof BrokerError) return e;
    throw e;
  }
  throw new Error('expected E_CONFIG_INVALID');
}

describe('parseConfig', () => {
  it('pins every default (paths resolved against the working directory)', () => {
    expect(parseConfig({})).toEqual({
      dataDir: resolve(process.cwd(), '.phi-broker'),
      operatorIdentity: 'auto',
      subjectsDir: resolve(process.cwd(), 'subjects'),
      profilesDir: resolve(process.cwd(), 'fhir-profiles'),
      maxMessageBytes: MiB,
      signatureVersion: 2,
      clockSkewMs: 5 * MINUTE,
      duplicateWindowMs: 2 * MINUTE,
      replayWindowMs: 6 * 60 * MINUTE,
      deliverMaxAgeMs: 7 * DAY,
      quarantineMaxAgeMs: 90 * DAY,
      receiptMaxAgeMs: DAY,
      disclosureMaxAgeMs: (6 * 365 + 2) * DAY, // six years, leap days included (45 CFR 164.528)
      ingestMaxBytes: 1024 * MiB,
      deliverMaxBytes: 4 * 1024 * MiB,
      quarantineMaxBytes: 1024 * MiB,
      receiptMaxBytes: 256 * MiB,
      disclosureMaxBytes: 4 * 1024 * MiB,
      seenMaxBytes: 1024 * MiB,
      quarantineSenderMaxBytes: 64 * MiB,
      quarantineSenderMaxMessages: 1000,
      quarantineSenderWindowMs: 60 * MINUTE,
      rejectionSenderMaxMessages: 100,
      rejectionSenderWindowMs: MINUTE,
      ackWaitMs: 30_000,
      concurrency: 64,
      heapGrowingPercent: 50,
      replicas: 1,
      accessAnswerTimeoutMs: 10_000,
      accessRetryIntervalMs: 30_000,
      auditMaxAgeMs: 2192 * DAY,
      auditCheckpointEvery: 1000,
      auditCheckpointMs: 60_000,
      auditIntegrityCheckMs: 5 * MINUTE,
      healthHost: '127.0.0.1',
      healthCheckMs: 5_000,
      gatewayPort: 8443,
      gatewayHost: '127.0.0.1',
      keyProvider: 'plain',
      keyKdf: 'moderate',
      logLevel: 'info',
      natsLogMaxBytes: 10 * MiB,
      natsLogFiles: 10,
      securityLogIntervalMs: 10_000,
      natsRestartAttempts: 5,
      stopTimeoutMs: 15_000,
    });
    expect('natsUrl' in parseConfig({})).toBe(false);
    expect('instanceId' in parseConfig({})).toBe(false);
    expect('alertRulesFile' in parseConfig({})).toBe(false);
    expect('natsTlsDir' in parseConfig({})).toBe(false);
    expect('healthPort' in parseConfig({})).toBe(false); // no endpoints in library use
    expect('gatewayBaseUrl' in parseConfig({})).toBe(false);
    expect('natsLogFile' in parseConfig({})).toBe(false);
  });

  it('keeps given values, resolves relative paths and keeps natsUrl', () => {
    const c = parseConfig({
      dataDir: 'x/y',
      natsUrl: 'nats://127.0.0.1:4222',
      concurrency: 1,
      logLevel: 'silent',
      maxMessageBytes: 1024,
    });
    expect(c.dataDir).toBe(resolve(process.cwd(), 'x/y'));
    expect(c.natsUrl).toBe('nats://127.0.0.1:4222');
    expect([c.concurrency, c.logLevel, c.maxMessageBytes]).toEqual([1, 'silent', 1024]);
  });

  it('returns a frozen object', () => {
    const c = parseConfig({});
    expect(Object.isFrozen(c)).toBe(true);
    expect(() => {
      (c as { concurrency: number }).concurrency = 2;
    }).toThrow(TypeError);
  });

  it.each([
    ['maxMessageBytes', 1023],
    ['maxMessageBytes', 64 * MiB + 1],
    ['maxMessageBytes', 1024.5],
    ['signatureVersion', 3],
    ['signatureVersion', 0],
    ['clockSkewMs', 999],
    ['clockSkewMs', DAY + 1],
    ['duplicateWindowMs', 999],
    ['duplicateWindowMs', 119_999], // shorter than the longest publish deadline (src/wire/publish.ts)
    ['deliverMaxAgeMs', 59_999],
    ['quarantineMaxAgeMs', 59_999],
    ['receiptMaxAgeMs', 59_999],
    ['disclosureMaxAgeMs', 59_999],
    ['ackWaitMs', 999],
    ['ackWaitMs', 10 * MINUTE + 1],
    ['concurrency', 0],
    ['concurrency', 4097],
    ['concurrency', '8'],
    ['replicas', 0],
    ['replicas', 2],
    ['replicas', 4],
    ['replicas', 7],
    ['replicas', '3'],
    ['logLevel', 'verbose'],
    ['dataDir', ''],
    ['subjectsDir', ''],
    ['profilesDir', 7],
    ['natsUrl', ''],
    ['instanceId', 'has.dot'],
    ['instanceId', 'x'.repeat(41)],
    ['auditMaxAgeMs', DAY - 1],
    ['auditCheckpointEvery', 0],
    ['auditCheckpointMs', 99],
    ['natsTlsDir', ''],
    ['healthPort', -1],
    ['healthPort', 65536],
    ['healthHost', ''],
    ['healthCheckMs', 99],
  ])('refuses %s = %j with E_CONFIG_INVALID naming the setting', (key, value) => {
    const e = configError({ [key]: value });
    expect(e.code).toBe('E_CONFIG_INVALID');
    expect(e.message).toMatch(new RegExp(`^invalid configuration: ${key}: `));
  });

  it('refuses an unknown setting, naming it', () => {
    const e = configError({ clockSkew: 1000 });
    expect(e.code).toBe('E_CONFIG_INVALID');
    expect(e.message).toContain('clockSkew');
  });

  it('names every bad setting at once', () => {
    const e = configError({ concurrency: 0, ackWaitMs: 1 });
    expect(e.message).toContain('concurrency: ');
    expect(e.message).toContain('ackWaitMs: ');
  });

  it('refuses a de-duplication window longer than a stream retention (JetStream would refuse the stream)', () => {
    const e = configError({ receiptMaxAgeMs: 119_999 }); // the default window is 2 minutes
    expect(e.code).toBe('E_CONFIG_INVALID');
    expect(e.message).toBe('invalid configuration: duplicateWindowMs: must not exceed receiptMaxAgeMs');
    const both = configError({
      duplicateWindowMs: 10 * MINUTE,
      receiptMaxAgeMs: 5 * MINUTE,
      deliverMaxAgeMs: 5 * MINUTE,
    });
    expect(both.message).toBe(
      'invalid configuration: duplicateWindowMs: must not exceed deliverMaxAgeMs, receiptMaxAgeMs',
    );
    // equal is allowed
    expect(parseConfig({ duplicateWindowMs: 150_000, receiptMaxAgeMs: 150_000 }).duplicateWindowMs).toBe(150_000);
  });

  it('the replay window must cover 2 × clock skew + the de-duplication window', () => {
    expect(
      parseConfig({ clockSkewMs: 10 * MINUTE, duplicateWindowMs: 2 * MINUTE, replayWindowMs: 22 * MINUTE })
        .replayWindowMs,
    ).toBe(22 * MINUTE);
    const e = configError({ clockSkewMs: 10 * MINUTE, duplicateWindowMs: 2 * MINUTE, replayWindowMs: 21 * MINUTE });
    expect(e.message).toBe(
      'invalid configuration: replayWindowMs: must be at least 2 × clockSkewMs + duplicateWindowMs',
    );
  });
});

describe('replicas', () => {
  it.each([1, 3, 5] as const)('accepts %i (PHI_BROKER_REPLICAS), an odd count a RAFT majority survives', (n) => {
    expect(parseConfig(configFromEnv({ PHI_BROKER_REPLICAS: String(n) })).replicas).toBe(n);
  });

  it('refuses 2 from the environment, saying what is allowed', () => {
    const e = configError(configFromEnv({ PHI_BROKER_REPLICAS: '2' }));
    expect(e.message).toBe('invalid configuration: replicas: expected 1, 3 or 5');
  });
});

describe('configFromEnv', () => {
  it('reads one variable per setting, numbers as numbers', () => {
    const input = configFromEnv({
      PHI_BROKER_DATA_DIR: '/d',
      NATS_URL: 'nats://x:1',
      PHI_BROKER_ACK_WAIT_MS: '2000',
      PHI_BROKER_REPLAY_WINDOW_MS: '3600000',
      PHI_BROKER_LOG_LEVEL: 'warn',
      UNRELATED: 'x',
    });
    expect(input).toEqual({
      dataDir: '/d',
      natsUrl: 'nats://x:1',
      ackWaitMs: 2000,
      replayWindowMs: 3_600_000,
      logLevel: 'warn',
    });
    expect(parseConfig(input).ackWaitMs).toBe(2000);
    expect(configFromEnv({ PHI_BROKER_CONCURRENCY: '' })).toEqual({});
  });

  it('names the variable, never its value, when a number is not one', () => {
    const e = (() => {
      try {
        configFromEnv({ PHI_BROKER_CLOCK_SKEW_MS: 'five minutes' });
      } catch (err) {
        return err as BrokerError;
      }
      throw new Error('expected E_CONFIG_INVALID');
    })();
    expect(e).toMatchObject({
      code: 'E_CONFIG_INVALID',
      message: 'invalid configuration: PHI_BROKER_CLOCK_SKEW_MS (clockSkewMs): expected a number',
    });
  });

  it('covers every setting but the catalog dirs (flags) with a variable', () => {
    expect(Object.values(CONFIG_ENV).sort()).toEqual(
      Object.keys(parseConfig({}))
        .filter((k) => k !== 'subjectsDir' && k !== 'profilesDir')
        .concat(
          'natsUrl',
          'instanceId',
          'alertRulesFile',
          'natsTlsDir',
          'healthPort',
          'gatewayBaseUrl',
          'gatewayClientCaFile',
          'natsLogFile',
          'keyProviderFile',
          'operator',
        )
        .sort(),
    );
  });
});
