// The right-of-access request as pure state: due dates (45 CFR 164.524(b)(2)), the single extension with its
// reason, per-service answered / incomplete / pending / failed with backoff / refused, and the request status that
// names what is missing.
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
  recordRefusal,
  reopen,
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

  it('an answer without a type the registry says the service holds is incomplete: partial, asked again, never complete', () => {
    const holds = { ehr: ['Observation', 'Patient'], billing: ['Patient'] };
    let r = newRequest({ id: 'ar-2', patient: 'p', sealedRef: 's', services: ['ehr', 'billing'], now: T0, holds });
    r = claimAttempt(claimAttempt(r, 'ehr', T0), 'billing', T0);
    r = recordAnswer(r, 'ehr', answer);
    // billing holds a Patient and answers nothing: incomplete, the request partial and naming it.
    r = recordAnswer(r, 'billing', { at: T0 + 2, resources: 0, types: {}, sha256: 'e3' });
    expect(r.services['billing']).toEqual({
      state: 'incomplete',
      attempts: 1,
      nextAttemptAt: T0 + retryDelay(1),
      answeredAt: T0 + 2,
      resources: 0,
      types: {},
      sha256: 'e3',
      missing: ['Patient'],
    });
    expect(r.status).toBe('partial');
    expect(unanswered(r)).toEqual(['billing']);
    expect(dueServices(r, T0 + retryDelay(1))).toEqual(['billing']);
    expect(decodeRequest(encodeRequest(r))).toEqual(r);
    // A later attempt that gets nothing keeps the incomplete answer on record.
    r = recordMiss(claimAttempt(r, 'billing', T0 + retryDelay(1)), 'billing', { failed: false, code: 'TIMEOUT' });
    expect(r.services['billing']).toMatchObject({ state: 'incomplete', attempts: 2 });
    // A type found only inside a Bundle the service keeps counts (covers).
    const nested = recordAnswer(r, 'billing', { ...answer, types: { Bundle: 1 }, covers: ['Bundle', 'Patient'] });
    expect(nested.services['billing']).toMatchObject({ state: 'answered', attempts: 2 });
    expect(nested.status).toBe('complete');
  });

  it('a refused answer is coded, never due again on its own, never complete; reopen asks it again', () => {
    let r = claimAttempt(claimAttempt(base(), 'ehr', T0), 'billing', T0);
    r = recordAnswer(r, 'ehr', answer);
    r = recordRefusal(r, 'billing', { at: T0 + 5, code: 'E_FHIR_INVALID', path: 'Bundle.entry[0].resource.status' });
    expect(r.services['billing']).toEqual({
      state: 'refused',
      attempts: 1,
      refusedAt: T0 + 5,
      code: 'E_FHIR_INVALID',
      path: 'Bundle.entry[0].resource.status',
    });
    expect(r.status).toBe('partial');
    expect(unanswered(r)).toEqual(['billing']);
    expect(dueServices(r, T0 + 365 * 86_400_000)).toEqual([]);
    expect(decodeRequest(encodeRequest(r))).toEqual(r);
    expect(claimAttempt(r, 'billing', T0 + 10)).toBe(r);
    expect(recordMiss(r, 'billing', { failed: false, code: '503' })).toBe(r);
    const again = reopen(r, T0 + 10);
    expect(again.services['billing']).toMatchObject({
      state: 'failed',
      code: 'E_FHIR_INVALID',
      nextAttemptAt: T0 + 10,
    });
    expect(again.services['ehr']).toBe(r.services['ehr']);
    expect(dueServices(again, T0 + 10)).toEqual(['billing']);
    expect(recordAnswer(claimAttempt(again, 'billing', T0 + 10), 'billing', answer).status).toBe('complete');
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
