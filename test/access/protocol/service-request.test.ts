// A service's own right-of-access requests (pure, src/access/protocol/service-request.ts): the command opens for the broker only
// when signed by the sender the subject names, from a catalog requester, fresh, and shaped as one Parameters
// parameter; the patient reference is never in the bytes; the broker's reply verifies only under its keys and for
// this command, and a refusal comes back as its code.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  openAccessCommand,
  openAccessReply,
  sealAccessCommand,
  sealAccessReply,
  summarize,
  type AccessCommand,
} from '../../../src/access/protocol/service-request.js';
import { newRequest } from '../../../src/access/protocol/request.js';
import { sealEnvelope } from '../../../src/envelope/seal.js';
import { parseEnvelope } from '../../../src/envelope/parse.js';
import { initCrypto } from '../../../src/crypto/sodium.js';
import { makeParties, type Parties } from '../../envelope/parties.js';

let p: Parties;
const REF = 'Patient/Zq7731Quebec';
const NOW = Date.UTC(2026, 10, 4, 12);
const SKEW = 300_000;
/** In these parties, `registration` plays the patient portal (the one requester); `billing` is not one. */
const REQUESTERS = ['registration'];

beforeAll(async () => {
  await initCrypto();
  p = makeParties('access-requester');
});

function command(
  c: AccessCommand = { op: 'create', patient: REF },
  service: 'registration' | 'billing' = 'registration',
  now = NOW,
) {
  return sealAccessCommand({
    id: 'cmd-1',
    service,
    command: c,
    now,
    signer: p.keys[service].sign,
    keyring: p.rings[service],
  });
}

function open(bytes: Uint8Array, sig: string | undefined, subjectService = 'registration', now = NOW) {
  return openAccessCommand(parseEnvelope(bytes), bytes, sig, p.rings.broker, {
    subjectService,
    requesters: REQUESTERS,
    now,
    clockSkewMs: SKEW,
  });
}

describe('command', () => {
  it('opens for the broker as create or status; the patient reference is only sealed', () => {
    const c = command();
    expect(open(c.bytes, c.sig)).toEqual({ iss: 'registration', command: { op: 'create', patient: REF } });
    expect(Buffer.from(c.bytes).toString('latin1')).not.toContain('Zq7731Quebec');
    const s = command({ op: 'status', id: 'ar-00000000-0000-4000-8000-000000000000' });
    expect(open(s.bytes, s.sig).command).toEqual({ op: 'status', id: 'ar-00000000-0000-4000-8000-000000000000' });
  });

  it("is refused without a valid signature, or signed with another service's key", () => {
    const c = command();
    expect(() => open(c.bytes, undefined)).toThrow(expect.objectContaining({ code: 'E_SIGNATURE' }) as Error);
    const tampered = new TextEncoder().encode(new TextDecoder().decode(c.bytes).replace('"cmd-1"', '"cmd-9"'));
    expect(() => open(tampered, c.sig)).toThrow(expect.objectContaining({ code: 'E_SIGNATURE' }) as Error);
    // billing signs an envelope that claims to be from registration: the key does not belong to the issuer.
    const forged = sealEnvelope({
      id: 'cmd-2',
      iss: 'registration',
      iat: NOW,
      typ: 'Parameters',
      resource: { resourceType: 'Parameters', parameter: [{ name: 'patient', valueString: REF }] },
      signer: { ...p.keys.billing.sign, kid: p.keys.registration.sign.kid },
      recipients: [
        { id: 'broker', kek: p.rings.registration.kekFor(p.rings.registration.encryptionKeyOf('broker').kid) },
      ],
    });
    expect(() => open(forged.bytes, forged.sig)).toThrow(expect.objectContaining({ code: 'E_SIGNATURE' }) as Error);
  });

  it('is refused when the subject names another sender, from a service that is no requester, or stale', () => {
    const c = command();
    expect(() => open(c.bytes, c.sig, 'billing')).toThrow(
      expect.objectContaining({ code: 'E_SENDER_MISMATCH', path: 'iss' }) as Error,
    );
    const b = command(undefined, 'billing');
    expect(() => open(b.bytes, b.sig, 'billing')).toThrow(
      expect.objectContaining({
        code: 'E_ACCESS_NOT_ALLOWED',
        path: 'iss',
        message: "iss: billing is not among the catalog's access requesters (subjects/access.yaml)",
      }) as Error,
    );
    expect(() => open(c.bytes, c.sig, 'registration', NOW + SKEW + 1)).toThrow(
      expect.objectContaining({ code: 'E_CLOCK_SKEW', path: 'iat' }) as Error,
    );
    expect(open(c.bytes, c.sig, 'registration', NOW - SKEW).iss).toBe('registration');
  });

  it('is refused unless it holds exactly one patient or request parameter with a string', () => {
    for (const parameter of [
      [],
      [
        { name: 'patient', valueString: REF },
        { name: 'request', valueString: 'x' },
      ],
      [{ name: 'subject', valueString: REF }],
      [{ name: 'patient', valueBoolean: true }],
    ]) {
      const e = sealEnvelope({
        id: 'cmd-3',
        iss: 'registration',
        iat: NOW,
        typ: 'Parameters',
        resource: { resourceType: 'Parameters', parameter },
        signer: p.keys.registration.sign,
        recipients: [
          { id: 'broker', kek: p.rings.registration.kekFor(p.rings.registration.encryptionKeyOf('broker').kid) },
        ],
      });
      expect(() => open(e.bytes, e.sig), JSON.stringify(parameter)).toThrow(
        expect.objectContaining({
          code: 'E_ENVELOPE_INVALID',
          path: 'Parameters.parameter',
          message: expect.not.stringContaining('Zq7731') as unknown,
        }) as Error,
      );
    }
  });
});

describe('reply', () => {
  const brokerKey = (): Uint8Array => p.rings.registration.signingPublicKey(p.keys.broker.sign.kid);
  const request = () =>
    newRequest({
      id: 'ar-00000000-0000-4000-8000-000000000001',
      patient: 'pseudo',
      sealedRef: 'sealed',
      services: ['ehr'],
      now: NOW,
      requester: 'registration',
    });

  it('carries id, status, received time and due date (30 days), no patient data, and verifies for this command', () => {
    const summary = summarize(request());
    expect(summary).toEqual({
      id: 'ar-00000000-0000-4000-8000-000000000001',
      status: 'open',
      receivedAt: '2026-11-04T12:00:00.000Z',
      due: '2026-12-04T12:00:00.000Z',
    });
    const r = sealAccessReply({ v: 1, re: 'cmd-1', ok: true, request: summary }, p.keys.broker.sign);
    expect(openAccessReply(r.bytes, r.sig, [brokerKey()], 'cmd-1')).toEqual(summary);
    expect(new TextDecoder().decode(r.bytes)).not.toMatch(/pseudo|sealed|ehr/);
    expect(() => openAccessReply(r.bytes, r.sig, [brokerKey()], 'cmd-2')).toThrow(
      expect.objectContaining({ code: 'E_ENVELOPE_INVALID', path: 're' }) as Error,
    );
  });

  it("does not verify under a service's key, and a refusal comes back as its code", () => {
    const forged = sealAccessReply({ v: 1, re: 'cmd-1', ok: true, request: summarize(request()) }, p.keys.billing.sign);
    expect(() => openAccessReply(forged.bytes, forged.sig, [brokerKey()], 'cmd-1')).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE' }) as Error,
    );
    const refused = sealAccessReply(
      { v: 1, re: 'cmd-1', ok: false, error: { code: 'E_ACCESS_NOT_ALLOWED', message: 'no', path: 'iss' } },
      p.keys.broker.sign,
    );
    expect(() => openAccessReply(refused.bytes, refused.sig, [brokerKey()], 'cmd-1')).toThrow(
      expect.objectContaining({ code: 'E_ACCESS_NOT_ALLOWED', path: 'iss' }) as Error,
    );
    const unknown = sealAccessReply(
      { v: 1, ok: false, error: { code: 'E_NOT_A_CODE', message: 'x' } },
      p.keys.broker.sign,
    );
    expect(() => openAccessReply(unknown.bytes, unknown.sig, [brokerKey()], 'cmd-1')).toThrow(
      expect.objectContaining({ code: 'E_INTERNAL' }) as Error,
    );
  });
});
