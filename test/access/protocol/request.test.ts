// The right-of-access request as pure state: due dates (45 CFR 164.524(b)(2)), the single extension with its
// reason, per-service answered / pending / failed with backoff, and the request status that names what is missing.
import { describe, expect, it } from 'vitest';
import {
  ACCESS_DUE_MS,
  ACCESS_EXTENSION_MS,
  claimAttempt,
  decodeRequest,
  dueServices,
  encodeRequest,
  extendRequest,
  isOverdue,
  newRequest,
  recordAnswer,
  recordMiss,
  retryDelay,
  unanswered,
} from '../../../src/access/protocol/request.js';

const T0 = Date.UTC(2026, 5, 1);
const base = () =>
  newRequest({ id: 'ar-1', patient: 'pseudo', sealedRef: 'sealed', services: ['ehr', 'billing'], now: T0 });
const answer = { at: T0 + 1, resources: 2, types: { Patient: 1, Observation: 1 }, sha256: 'ab' };

describe('access request state', () => {
  it('is due 30 days after receipt; every service pending and due now', () => {
    const r = base();
    expect(r.dueAt - r.receivedAt).toBe(ACCESS_DUE_MS);
    expect(ACCESS_DUE_MS).toBe(30 * 86_400_000);
    expect(r.status).toBe('open');
    expect(dueServices(r, T0)).toEqual(['billing', 'ehr']);
  });

  it('claims attempts with exponential backoff, and is partial (naming the rest) until every service answered', () => {
    let r = claimAttempt(base(), 'billing', T0);
    expect(r.services['billing']).toEqual({ state: 'pending', attempts: 1, nextAttemptAt: T0 + retryDelay(1) });
    r = recordMiss(r, 'billing', { failed: false, code: '503' });
    expect(dueServices(r, T0 + retryDelay(1) - 1)).toEqual(['ehr']);
    expect(dueServices(r, T0 + retryDelay(1))).toEqual(['billing', 'ehr']);
    expect([retryDelay(1), retryDelay(2), retryDelay(3), retryDelay(30)]).toEqual([
      60_000, 120_000, 240_000, 3_600_000,
    ]);
    r = recordAnswer(claimAttempt(r, 'ehr', T0), 'ehr', answer);
    expect(r.status).toBe('partial');
    expect(unanswered(r)).toEqual(['billing']);
    r = recordMiss(claimAttempt(r, 'billing', T0 + retryDelay(1)), 'billing', { failed: true, code: 'E_SIGNATURE' });
    expect(r.services['billing']).toMatchObject({ state: 'failed', attempts: 2, code: 'E_SIGNATURE' });
    expect(r.status).toBe('partial');
    r = recordAnswer(r, 'billing', answer);
    expect(r.status).toBe('complete');
    expect(dueServices(r, T0 + ACCESS_DUE_MS)).toEqual([]);
  });

  it('a request no service holds data for is complete at once', () => {
    expect(newRequest({ id: 'ar-2', patient: 'p', sealedRef: 's', services: [], now: T0 }).status).toBe('complete');
  });

  it('is extended once by 30 days with a written reason; a second extension, or none without a reason, is refused', () => {
    expect(() => extendRequest(base(), '  ', T0)).toThrow(
      expect.objectContaining({ code: 'E_ACCESS_EXTENDED', path: 'reason' }) as Error,
    );
    const once = extendRequest(base(), 'records are held off site', T0 + 5);
    expect(once.dueAt).toBe(T0 + ACCESS_DUE_MS + ACCESS_EXTENSION_MS);
    expect(once.extension).toEqual({
      at: T0 + 5,
      reason: 'records are held off site',
      previousDueAt: T0 + ACCESS_DUE_MS,
    });
    expect(() => extendRequest(once, 'again', T0 + 6)).toThrow(
      expect.objectContaining({
        code: 'E_ACCESS_EXTENDED',
        path: 'extension',
        message: 'extension: the request was already extended once (45 CFR 164.524(b)(2)(ii))',
      }) as Error,
    );
  });

  it('is not extended after its due date (164.524(b)(2)(ii): within the first 30 days), so it stays overdue', () => {
    const r = base();
    expect(extendRequest(r, 'records are held off site', r.dueAt).dueAt).toBe(r.dueAt + ACCESS_EXTENSION_MS);
    expect(() => extendRequest(r, 'records are held off site', r.dueAt + 1)).toThrow(
      expect.objectContaining({ code: 'E_ACCESS_EXTENSION_LATE', path: 'extension' }) as Error,
    );
    expect(isOverdue(r, r.dueAt + 1)).toBe(true);
  });

  it('is overdue after its due date unless complete', () => {
    const r = base();
    expect(isOverdue(r, r.dueAt)).toBe(false);
    expect(isOverdue(r, r.dueAt + 1)).toBe(true);
    const done = recordAnswer(recordAnswer(r, 'ehr', answer), 'billing', answer);
    expect(isOverdue(done, done.dueAt + 1)).toBe(false);
  });

  it('round-trips its stored form and refuses another', () => {
    const r = recordMiss(claimAttempt(base(), 'ehr', T0), 'ehr', { failed: false, code: 'TIMEOUT' });
    expect(decodeRequest(encodeRequest(r))).toEqual(r);
    // A refused answer keeps its element path (never a value); a pending miss has none.
    const refused = recordMiss(claimAttempt(base(), 'ehr', T0), 'ehr', {
      failed: true,
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[2].resource',
    });
    expect(refused.services['ehr']).toEqual({
      state: 'failed',
      attempts: 1,
      nextAttemptAt: T0 + retryDelay(1),
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[2].resource',
    });
    expect(decodeRequest(encodeRequest(refused))).toEqual(refused);
    expect(
      recordMiss(claimAttempt(base(), 'ehr', T0), 'ehr', { failed: false, code: 'TIMEOUT', path: 'x' }).services['ehr'],
    ).not.toHaveProperty('path');
    expect(() => decodeRequest(new TextEncoder().encode('{"v":1}'))).toThrow(
      expect.objectContaining({ code: 'E_STORED_INVALID', path: 'id' }),
    );
  });
});
