// The registry record (pure): merging observations by role, type and purpose; min/max times whatever the
// order; a redelivered message counted once; the stored form checked on read.
import { describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/wire/errors.js';
import {
  RECENT_IDS,
  applyObservation,
  decodeRecord,
  emptyRecord,
  encodeRecord,
  type Observation,
} from '../../src/registry/record.js';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);
const obs = (messageId: string, at: number, over: Partial<Observation> = {}): Observation => ({
  messageId,
  types: ['Observation'],
  at,
  source: 'ehr',
  recipients: [
    { service: 'ehr', purpose: 'TREAT' },
    { service: 'analytics', purpose: 'HRESCH' },
  ],
  ...over,
});

describe('applyObservation', () => {
  it('records the sender as source and each recipient with its purpose', () => {
    const r = applyObservation(emptyRecord(), obs('m1', T0));
    expect(r).toEqual({
      v: 1,
      services: {
        analytics: {
          recipient: {
            types: ['Observation'],
            purposes: ['HRESCH'],
            firstSeen: '2026-01-02T03:04:05.000Z',
            lastSeen: '2026-01-02T03:04:05.000Z',
            count: 1,
          },
        },
        ehr: {
          source: {
            types: ['Observation'],
            purposes: [],
            firstSeen: '2026-01-02T03:04:05.000Z',
            lastSeen: '2026-01-02T03:04:05.000Z',
            count: 1,
          },
          recipient: {
            types: ['Observation'],
            purposes: ['TREAT'],
            firstSeen: '2026-01-02T03:04:05.000Z',
            lastSeen: '2026-01-02T03:04:05.000Z',
            count: 1,
          },
        },
      },
      recent: ['m1'],
    });
  });

  it('merges types and purposes, counts, and keeps first/last as min/max whatever the order of application', () => {
    let r = applyObservation(
      emptyRecord(),
      obs('m2', T0 + 5000, { types: ['Condition'], recipients: [{ service: 'billing', purpose: 'HPAYMT' }] }),
    );
    r = applyObservation(r, obs('m1', T0, { recipients: [{ service: 'billing', purpose: 'HOPERAT' }] }));
    expect(r.services['billing']?.recipient).toEqual({
      types: ['Condition', 'Observation'],
      purposes: ['HOPERAT', 'HPAYMT'],
      firstSeen: new Date(T0).toISOString(),
      lastSeen: new Date(T0 + 5000).toISOString(),
      count: 2,
    });
    expect(r.services['ehr']?.source?.count).toBe(2);
    expect(r.services['ehr']?.recipient).toBeUndefined();
  });

  it('counts a message id once (a redelivery after a crash), and forgets ids beyond RECENT_IDS', () => {
    const once = applyObservation(emptyRecord(), obs('m1', T0));
    expect(applyObservation(once, obs('m1', T0 + 1))).toBe(once);
    let r = once;
    for (let i = 0; i < RECENT_IDS; i++) r = applyObservation(r, obs(`n${i}`, T0));
    expect(r.recent).toHaveLength(RECENT_IDS);
    expect(r.recent).not.toContain('m1');
    expect(r.services['ehr']?.source?.count).toBe(RECENT_IDS + 1);
  });
});

describe('encodeRecord / decodeRecord', () => {
  it('round-trips, and refuses what is not a v1 record with a code, naming the element, without quoting it', () => {
    const r = applyObservation(emptyRecord(), obs('m1', T0));
    expect(decodeRecord(encodeRecord(r))).toEqual(r);
    const notJson = thrown(() => decodeRecord(new TextEncoder().encode('Zephyrine')));
    expect(notJson).toMatchObject({
      code: 'E_JSON_MALFORMED',
      message: 'registry record is not well-formed UTF-8 JSON',
    });
    const v2 = thrown(() => decodeRecord(new TextEncoder().encode('{"v":2,"services":{},"recent":["Zephyrine"]}')));
    expect(v2).toMatchObject({ code: 'E_STORED_INVALID', path: 'v' });
    expect(v2.message).toMatch(/^registry record v: /);
    expect(v2.message).not.toContain('Zephyrine');
  });
});

function thrown(f: () => unknown): BrokerError {
  try {
    f();
  } catch (e) {
    if (e instanceof BrokerError) return e;
    throw e;
  }
  throw new Error('expected a BrokerError');
}
