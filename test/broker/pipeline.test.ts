// The broker's per-message decision without a server (STYLE habit 4): checkEnvelope's checks in their order, each
// rejection's code, message and path; routeMessage's deliveries per subscriber of the shipped catalog (subjects,
// ids, provenance, each opening only for its own subscriber); raw mode; a modifier withheld from one subscriber.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkEnvelope, routeMessage, type IngestMessage } from '../../src/broker/pipeline.js';
import type { RouteTable, SubscriberRoute, TypeRoute } from '../../src/broker/routes.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { verifyDetached } from '../../src/crypto/sign.js';
import { openEnvelope, parseEnvelope } from '../../src/envelope/open.js';
import { compileProfile } from '../../src/projection/compile.js';
import { profile } from '../projection/fixtures.js';
import {
  MAX_BYTES,
  NOW,
  SKEW_MS,
  context,
  heldRoutes,
  patient,
  publication,
  rawPublication,
  thrown,
  world,
} from './fixtures.js';

beforeAll(async () => {
  await initCrypto();
  world();
});

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}

/** Flips one byte of a base64url signature so it stays well-formed but no longer verifies. */
function corrupt(sig: string): string {
  const raw = Buffer.from(sig, 'base64url');
  raw[10] = (raw[10] ?? 0) ^ 0xff;
  return raw.toString('base64url');
}

describe('checkEnvelope: each check in order', () => {
  it('accepts a well-formed, signed, authorised, timely message and hashes its exact bytes', () => {
    const msg = publication({ resource: patient() });
    const checked = checkEnvelope(msg, context());
    expect(checked.sender).toBe('registration');
    expect(checked.type).toBe('Patient');
    expect(checked.env.id).toBe('msg-0001');
    expect(checked.hash).toBe(sha256(msg.data));
    expect(checked.hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('1. subject shape first: E_ENVELOPE_INVALID even for an oversized non-JSON body', () => {
    for (const subject of [
      'phi.ingest.registration',
      'phi.deliver.registration.Patient',
      'phi.ingest.Registration.Patient',
      'phi.ingest.registration.patient',
      'phi.ingest.registration.Patient.x',
    ]) {
      const e = thrown(() =>
        checkEnvelope(
          { subject, data: new Uint8Array(MAX_BYTES + 1), signature: undefined, storedAtMs: NOW },
          context(),
        ),
      );
      expect(e.code, subject).toBe('E_ENVELOPE_INVALID');
      expect(e.message).toBe('subject is not phi.ingest.<service>.<Type>');
    }
  });

  it('2. size before parsing: E_TOO_LARGE names both sizes, never content', () => {
    const data = new Uint8Array(MAX_BYTES + 1).fill(0x41);
    const e = thrown(() =>
      checkEnvelope(
        { subject: 'phi.ingest.registration.Patient', data, signature: undefined, storedAtMs: NOW },
        context(),
      ),
    );
    expect(e.code).toBe('E_TOO_LARGE');
    expect(e.message).toBe(`message is ${MAX_BYTES + 1} bytes; the limit is ${MAX_BYTES}`);
    // exactly at the limit the size check passes (and the parse fails instead)
    const atLimit = thrown(() =>
      checkEnvelope(
        {
          subject: 'phi.ingest.registration.Patient',
          data: data.subarray(0, MAX_BYTES),
          signature: undefined,
          storedAtMs: NOW,
        },
        context(),
      ),
    );
    expect(atLimit.code).toBe('E_JSON_MALFORMED');
  });

  it('3. parse: not JSON is E_JSON_MALFORMED; JSON that is no envelope is E_ENVELOPE_INVALID with the field', () => {
    const notJson = thrown(() =>
      checkEnvelope(
        {
          subject: 'phi.ingest.registration.Patient',
          data: new TextEncoder().encode('{"v":1,'),
          signature: 'x',
          storedAtMs: NOW,
        },
        context(),
      ),
    );
    expect(notJson.code).toBe('E_JSON_MALFORMED');
    expect(notJson.message).toBe('the message is not well-formed UTF-8 JSON');
    const plain = new TextEncoder().encode(JSON.stringify(patient()));
    const e = thrown(() =>
      checkEnvelope(
        { subject: 'phi.ingest.registration.Patient', data: plain, signature: 'x', storedAtMs: NOW },
        context(),
      ),
    );
    expect(e.code).toBe('E_ENVELOPE_INVALID');
    expect(e.path).toBe('resourceType');
    expect(e.message).not.toContain('Vexlander');
  });

  it('4. sender match: iss differs from the subject → E_SENDER_MISMATCH (before type, signature, skew)', () => {
    const msg = publication({
      resource: patient(),
      subject: 'phi.ingest.ehr.Observation',
      signature: 'bad',
      iat: NOW - 10 * SKEW_MS,
    });
    const e = thrown(() => checkEnvelope(msg, context()));
    expect(e.code).toBe('E_SENDER_MISMATCH');
    expect(e.path).toBe('iss');
    expect(e.message).toBe('envelope iss differs from the sender named by the subject');
  });

  it('5. type match: typ differs from the subject → E_ENVELOPE_INVALID path typ (before signature)', () => {
    const msg = publication({ resource: patient(), subject: 'phi.ingest.registration.Coverage', signature: 'bad' });
    const e = thrown(() => checkEnvelope(msg, context()));
    expect(e.code).toBe('E_ENVELOPE_INVALID');
    expect(e.path).toBe('typ');
    expect(e.message).toBe('envelope typ differs from the resource type named by the subject');
  });

  it('6. key owner: a kid of another service is E_SIGNATURE path kid; a kid never issued is E_KEY_UNKNOWN (before the signature)', () => {
    // sealEnvelope refuses a signer of another service, so the bytes are forged by editing the kid after sealing.
    const honest = publication({ resource: patient() });
    const forged = new TextEncoder().encode(
      new TextDecoder().decode(honest.data).replace('"kid":"registration:sig:1"', '"kid":"ehr:sig:1"'),
    );
    const e = thrown(() => checkEnvelope({ ...honest, data: forged }, context()));
    expect(e.code).toBe('E_SIGNATURE');
    expect(e.path).toBe('kid');

    const unknown = new TextEncoder().encode(
      new TextDecoder().decode(honest.data).replace('"kid":"registration:sig:1"', '"kid":"registration:sig:9"'),
    );
    const u = thrown(() => checkEnvelope({ ...honest, data: unknown, signature: 'garbage' }, context()));
    expect(u.code).toBe('E_KEY_UNKNOWN');
    expect(u.message).toBe('key registration:sig:9 is not held (never issued, or retired)');
  });

  it('7. signature: missing, malformed or not verifying → E_SIGNATURE (before type, authorisation and skew)', () => {
    // Foo is no R4 type, registration may not publish it, and the clock is far off: the signature still decides.
    const base = { resource: { resourceType: 'Foo', id: 'x' }, iat: NOW - 10 * SKEW_MS } as const;
    const missing = thrown(() => checkEnvelope(publication({ ...base, signature: undefined }), context()));
    expect([missing.code, missing.message]).toEqual(['E_SIGNATURE', 'envelope signature is missing']);
    const malformed = thrown(() => checkEnvelope(publication({ ...base, signature: 'not*base64' }), context()));
    expect([malformed.code, malformed.message]).toEqual(['E_SIGNATURE', 'envelope signature is malformed']);
    const good = publication(base);
    const wrong = thrown(() => checkEnvelope({ ...good, signature: corrupt(good.signature as string) }, context()));
    expect([wrong.code, wrong.message]).toEqual([
      'E_SIGNATURE',
      'envelope signature does not verify with the named key',
    ]);
    // A signature over other bytes (one byte of the body changed) does not verify either.
    const tampered = new Uint8Array(good.data);
    const at = new TextDecoder().decode(tampered).indexOf('"iat":') + 6;
    tampered[at] = tampered[at] === 0x31 ? 0x32 : 0x31;
    expect(thrown(() => checkEnvelope({ ...good, data: tampered }, context())).code).toBe('E_SIGNATURE');
  });

  it('8. unknown type after the signature: E_UNKNOWN_RESOURCE_TYPE path resourceType (before authorisation and skew)', () => {
    const msg = publication({ resource: { resourceType: 'Foo', id: 'x' }, iat: NOW - 10 * SKEW_MS });
    const e = thrown(() => checkEnvelope(msg, context()));
    expect(e.code).toBe('E_UNKNOWN_RESOURCE_TYPE');
    expect(e.path).toBe('resourceType');
    expect(e.message).toBe('resourceType names no FHIR R4 resource');
  });

  it('9. authorisation: a type the sender may not publish, or one no topic names → E_NOT_AUTHORIZED path typ (before skew)', () => {
    const obs = { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'x' } };
    const e = thrown(() => checkEnvelope(publication({ resource: obs, iat: NOW - 10 * SKEW_MS }), context()));
    expect(e.code).toBe('E_NOT_AUTHORIZED');
    expect(e.path).toBe('typ');
    expect(e.message).toBe('service registration may not publish Observation');
    const noTopic = thrown(() =>
      checkEnvelope(publication({ resource: { resourceType: 'Specimen', id: 's1' } }), context()),
    );
    expect([noTopic.code, noTopic.message]).toEqual([
      'E_NOT_AUTHORIZED',
      'service registration may not publish Specimen',
    ]);
    // a publisher listed for another type only (directory publishes Organization, not Patient)
    const dir = thrown(() => checkEnvelope(publication({ from: 'directory', resource: patient() }), context()));
    expect([dir.code, dir.message]).toEqual(['E_NOT_AUTHORIZED', 'service directory may not publish Patient']);
  });

  it('10. skew last: iat more than clockSkewMs from the stored time → E_CLOCK_SKEW path iat; the bounds are inclusive', () => {
    for (const iat of [NOW - SKEW_MS - 1, NOW + SKEW_MS + 1]) {
      const e = thrown(() => checkEnvelope(publication({ resource: patient(), iat }), context()));
      expect(e.code).toBe('E_CLOCK_SKEW');
      expect(e.path).toBe('iat');
      expect(e.message).toBe(`iat is more than ${SKEW_MS} ms from the time the message was stored`);
    }
    for (const iat of [NOW - SKEW_MS, NOW + SKEW_MS])
      expect(checkEnvelope(publication({ resource: patient(), iat }), context()).env.iat).toBe(iat);
    // the reference is the time NATS stored the message, not the broker's clock
    const late = publication({ resource: patient(), iat: NOW - 3 * SKEW_MS, storedAtMs: NOW - 3 * SKEW_MS });
    expect(checkEnvelope(late, context()).env.iat).toBe(NOW - 3 * SKEW_MS);
  });

  it('11. an id too long for its delivery ids <id>.<subscriber> → E_ENVELOPE_INVALID path id (was an internal error)', () => {
    // The longest Patient subscriber id in the shipped catalog decides; a delivery id is at most 128 characters.
    const longest = Math.max(
      ...(world().catalog.topics.get('Patient')?.subscribers ?? []).map((s) => s.service.length),
    );
    const fits = 'a'.repeat(128 - 1 - longest);
    const ctx = context();
    const ok = routeMessage(checkEnvelope(publication({ resource: patient(), id: fits }), ctx), ctx);
    expect(Math.max(...ok.deliveries.map((d) => d.msgId.length))).toBe(128);
    const e = thrown(() => checkEnvelope(publication({ resource: patient(), id: `${fits}b` }), ctx));
    expect(e.code).toBe('E_ENVELOPE_INVALID');
    expect(e.path).toBe('id');
    expect(e.message).toBe(
      'envelope field id: too long to form the delivery ids <id>.<subscriber> (128 characters at most)',
    );
    // raw input is never routed, so its id only has to be a message id
    expect(checkEnvelope(rawPublication('x', { id: 'r'.repeat(128) }), ctx).type).toBe('$raw');
  });

  it('raw envelopes skip authorisation (they are never routed) but not the signature', () => {
    const raw = rawPublication('not json at all');
    expect(checkEnvelope(raw, context()).type).toBe('$raw');
    expect(thrown(() => checkEnvelope({ ...raw, signature: corrupt(raw.signature as string) }, context())).code).toBe(
      'E_SIGNATURE',
    );
  });
});

describe('routeMessage: one delivery per subscriber of the shipped catalog', () => {
  function route(msg: IngestMessage) {
    const ctx = context();
    return { checked: checkEnvelope(msg, ctx), routed: routeMessage(checkEnvelope(msg, ctx), ctx) };
  }

  it('delivers a Patient to every subscriber the catalog names, on its own subject, with id <id>.<service>', () => {
    const w = world();
    const msg = publication({ resource: patient(), id: 'pat-msg-42' });
    const { routed } = route(msg);
    const expected = w.catalog.topics.get('Patient')?.subscribers ?? [];
    expect(expected.length).toBeGreaterThan(1);
    expect(routed.withheld).toEqual([]);
    expect(routed.deliveries.map((d) => d.service)).toEqual(expected.map((s) => s.service));
    for (const d of routed.deliveries) {
      const sub = expected.find((s) => s.service === d.service);
      expect(d.subject).toBe(`phi.deliver.${d.service}.Patient`);
      expect(d.msgId).toBe(`pat-msg-42.${d.service}`);
      expect(d.purpose).toBe(sub?.purpose);
      expect(d.profileUrl).toBe(w.catalog.profiles.get(sub?.profile ?? '')?.url);
    }
  });

  it('each delivery is signed by the broker over its exact bytes and carries provenance: publisher, id, SHA-256 of the ingest bytes', () => {
    const w = world();
    const msg = publication({ resource: patient(), id: 'pat-msg-43', iat: NOW - 1234 });
    const { routed } = route(msg);
    const ingestHash = sha256(msg.data);
    for (const d of routed.deliveries) {
      expect(verifyDetached(d.bytes, Buffer.from(d.sig ?? '', 'base64url'), w.keys.broker.sign.publicKey)).toBe(true);
      const env = parseEnvelope(d.bytes);
      expect(env.iss).toBe('broker');
      expect(env.kid).toBe(w.keys.broker.sign.kid);
      expect(env.id).toBe(d.msgId);
      expect(env.iat).toBe(NOW); // the frozen clock
      expect(env.prov).toEqual({
        src: 'registration',
        mid: 'pat-msg-43',
        hash: ingestHash,
        profile: d.profileUrl,
        purpose: d.purpose,
        at: NOW - 1234,
      });
      expect(env.keys.map((k) => k.to)).toEqual([d.service]);
      const text = new TextDecoder().decode(d.bytes);
      for (const phi of ['Vexlander', 'Orsolya', '1961-07-04', 'MRN-ZZ-77123', '4242', 'Imaginary'])
        expect(text).not.toContain(phi);
    }
  });

  it('a delivery opens with its own subscriber KEK only, cut to that subscriber profile', () => {
    const w = world();
    const { routed } = route(publication({ resource: patient() }));
    const byService = new Map(routed.deliveries.map((d) => [d.service, parseEnvelope(d.bytes)]));
    const ehrEnv = byService.get('ehr');
    const billingEnv = byService.get('billing');
    const contactEnv = byService.get('notification');
    if (ehrEnv === undefined || billingEnv === undefined || contactEnv === undefined)
      throw new Error('missing delivery');

    const ehr = openEnvelope(ehrEnv, 'ehr', (id) => w.rings.ehr.kekForId(id)) as Record<string, unknown>;
    expect(ehr['name']).toEqual([{ family: 'Vexlander', given: ['Orsolya'] }]);
    expect(ehr['telecom']).toEqual(patient()['telecom']);
    expect((ehr['meta'] as { profile: string[] }).profile).toContain(w.catalog.profiles.get('patient-full')?.url);

    const contact = openEnvelope(contactEnv, 'notification', (id) => w.rings.notification.kekForId(id)) as Record<
      string,
      unknown
    >;
    expect(Object.keys(contact).sort()).toEqual(['id', 'meta', 'name', 'resourceType', 'telecom']);
    // patient-contact does not deliver the id: notification gets its own keyed pseudonym of it, not the id.
    expect(contact['id']).toBe(context().pseudonymizerFor('notification')(String(patient()['id'])));
    expect(contact['id']).not.toBe(patient()['id']);
    expect(JSON.stringify(contact)).not.toContain('1961');

    // billing holds no wrapped key in ehr's copy …
    const noCopy = thrown(() => openEnvelope(ehrEnv, 'billing', (id) => w.rings.billing.kekForId(id)));
    expect(noCopy.code).toBe('E_KEY_UNKNOWN');
    expect(noCopy.path).toBe('keys');
    // … cannot derive the KEK ehr's copy is wrapped under …
    const ehrKekId = ehrEnv.keys[0]?.kek ?? '';
    const notOurs = thrown(() => w.rings.billing.kekForId(ehrKekId));
    expect(notOurs.code).toBe('E_KEY_UNKNOWN');
    // … and its own KEK with the broker, presented under ehr's KEK id, does not authenticate.
    const billingKek = w.rings.billing.kekFor(w.keys.broker.enc.kid);
    const forged = thrown(() => openEnvelope(ehrEnv, 'ehr', { id: ehrKekId, key: billingKek.key }));
    expect(forged.code).toBe('E_DECRYPT');
    expect(forged.path).toBe('keys[0].wk');
    // the billing copy opens for billing
    const billing = openEnvelope(billingEnv, 'billing', (id) => w.rings.billing.kekForId(id)) as Record<
      string,
      unknown
    >;
    expect(billing['birthDate']).toBe('1961-07-04');
    expect(billing['telecom']).toBeUndefined();
  });

  it('redelivery of the same ingest message yields the same delivery ids (JetStream de-duplicates them)', () => {
    const msg = publication({ resource: patient(), id: 'stable-1' });
    const a = route(msg).routed.deliveries.map((d) => d.msgId);
    const b = route(msg).routed.deliveries.map((d) => d.msgId);
    expect(a).toEqual(b);
  });

  it('invalid FHIR after decryption is rejected with the validator code and path, not delivered', () => {
    const bad = { ...patient(), favouriteColour: 'teal' };
    const e = thrown(() => route(publication({ resource: bad })));
    expect(e.code).toBe('E_UNKNOWN_ELEMENT');
    expect(e.path).toBe('Patient.favouriteColour');
    expect(e.message).not.toContain('teal');
    const g = thrown(() => route(publication({ resource: { ...patient(), gender: 'sometimes' } })));
    expect(g.code).toBe('E_FHIR_INVALID');
    expect(g.path).toBe('Patient.gender');
    expect(g.message).not.toContain('sometimes');
  });

  it('no data key wrapped for the broker → E_KEY_UNKNOWN path keys; a wrap under a wrong key → E_DECRYPT', () => {
    const w = world();
    const toEhr = publication({
      resource: patient(),
      seal: { recipients: [{ id: 'ehr', kek: w.rings.registration.kekFor(w.keys.ehr.enc.kid) }] },
    });
    const ctx = context();
    const e = thrown(() => routeMessage(checkEnvelope(toEhr, ctx), ctx));
    expect([e.code, e.path, e.message]).toEqual(['E_KEY_UNKNOWN', 'keys', 'no data key is wrapped for the broker']);
    const realKek = w.rings.registration.kekFor(w.keys.broker.enc.kid);
    const wrongKey = publication({
      resource: patient(),
      seal: { recipients: [{ id: 'broker', kek: { id: realKek.id, key: new Uint8Array(32).fill(9) } }] },
    });
    const d = thrown(() => routeMessage(checkEnvelope(wrongKey, ctx), ctx));
    expect([d.code, d.path]).toEqual(['E_DECRYPT', 'keys[0].wk']);
  });
});

describe('routeMessage: raw mode', () => {
  function routeRaw(raw: Uint8Array | string) {
    const ctx = context();
    return routeMessage(checkEnvelope(rawPublication(raw), ctx), ctx);
  }

  it('malformed JSON → E_JSON_MALFORMED; invalid UTF-8 → E_JSON_MALFORMED (own message)', () => {
    const e = thrown(() => routeRaw('{"resourceType":"Patient", name: Vexlander'));
    expect([e.code, e.message]).toEqual(['E_JSON_MALFORMED', 'input is not well-formed JSON']);
    const u = thrown(() => routeRaw(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])));
    expect([u.code, u.message]).toEqual(['E_JSON_MALFORMED', 'input is not UTF-8 text']);
  });

  it('a Bundle.entry shape (no resourceType; fullUrl/request/resource/response) → E_BUNDLE_INVALID path Bundle.entry', () => {
    for (const entry of [
      { fullUrl: 'urn:uuid:1' },
      { request: { method: 'POST', url: 'Patient' } },
      { resource: 'x' },
      { response: { status: '201' } },
    ]) {
      const e = thrown(() => routeRaw(JSON.stringify(entry)));
      expect(e.code, JSON.stringify(entry)).toBe('E_BUNDLE_INVALID');
      expect(e.path).toBe('Bundle.entry');
    }
  });

  it('JSON that is not FHIR is rejected by validation with its own code', () => {
    expect(thrown(() => routeRaw('[1,2,3]')).code).toBe('E_NOT_FHIR');
    expect(thrown(() => routeRaw('{"hello":"world"}')).code).toBe('E_NOT_FHIR');
    expect(thrown(() => routeRaw('{"resourceType":"Patient","id":"p","shoeSize":44}')).code).toBe('E_UNKNOWN_ELEMENT');
  });

  it('a valid resource sent raw is validated, then never routed: E_ENVELOPE_INVALID path typ', () => {
    const e = thrown(() => routeRaw(JSON.stringify(patient())));
    expect(e.code).toBe('E_ENVELOPE_INVALID');
    expect(e.path).toBe('typ');
    expect(e.message).toBe('raw input is never routed; publish it as a typed resource');
  });
});

describe('routeMessage: E_MODIFIER_WITHHELD denies one subscriber only', () => {
  const MODIFIER_URL = 'urn:example:do-not-contact';

  function table(): RouteTable {
    const full = compileProfile(profile('Patient', ['Patient'], { id: 'pt-all', url: 'urn:example:profile:all' }));
    const namesOnly = compileProfile(
      profile('Patient', ['Patient.name'], { id: 'pt-names', url: 'urn:example:profile:names' }),
    );
    const subs: SubscriberRoute[] = [
      { service: 'ehr', profileId: 'pt-all', profileUrl: 'urn:example:profile:all', purpose: 'TREAT', project: full },
      {
        service: 'notification',
        profileId: 'pt-names',
        profileUrl: 'urn:example:profile:names',
        purpose: 'HOPERAT',
        project: namesOnly,
      },
    ];
    const route: TypeRoute = { resourceType: 'Patient', publishers: new Set(['registration']), subscribers: subs };
    return new Map([['Patient', route]]);
  }

  it('the subscriber whose profile withholds modifierExtension gets nothing; the other gets its copy', () => {
    const w = world();
    const ctx = context({ routes: table() });
    const resource = { ...patient(), modifierExtension: [{ url: MODIFIER_URL, valueBoolean: true }] };
    const routed = routeMessage(checkEnvelope(publication({ resource, id: 'mod-1' }), ctx), ctx);
    expect(routed.deliveries.map((d) => d.service)).toEqual(['ehr']);
    expect(routed.withheld).toHaveLength(1);
    const w0 = routed.withheld[0];
    expect(w0?.service).toBe('notification');
    expect(w0?.error.code).toBe('E_MODIFIER_WITHHELD');
    expect(w0?.error.path).toBe('Patient.modifierExtension');
    expect(w0?.error.message).toContain('pt-names');
    const d = routed.deliveries[0];
    if (d === undefined) throw new Error('no delivery');
    const opened = openEnvelope(parseEnvelope(d.bytes), 'ehr', (id) => w.rings.ehr.kekForId(id)) as Record<
      string,
      unknown
    >;
    expect(opened['modifierExtension']).toEqual([{ url: MODIFIER_URL, valueBoolean: true }]);
  });

  it('without the modifier both subscribers are served', () => {
    const ctx = context({ routes: table() });
    const routed = routeMessage(checkEnvelope(publication({ resource: patient(), id: 'mod-2' }), ctx), ctx);
    expect(routed.deliveries.map((d) => d.service)).toEqual(['ehr', 'notification']);
    expect(routed.withheld).toEqual([]);
  });

  it('any other projector failure is not swallowed: it rejects the whole message', () => {
    const base = table().get('Patient');
    if (base === undefined) throw new Error('no route');
    const boom: SubscriberRoute = {
      ...(base.subscribers[1] as SubscriberRoute),
      project: () => {
        throw new TypeError('projector bug');
      },
    };
    const ctx = context({
      routes: new Map([['Patient', { ...base, subscribers: [base.subscribers[0] as SubscriberRoute, boom] }]]),
    });
    const e = thrown(() => routeMessage(checkEnvelope(publication({ resource: patient() }), ctx), ctx));
    expect(e.name).toBe('TypeError');
  });
});

describe('time bounds of the replay cache, and deliveries NATS cannot carry', () => {
  it('a message older than the replay window (less the skew) is E_CLOCK_SKEW: the cache may have forgotten its original', () => {
    const window = 60 * 60 * 1000;
    // Stored on time (so the skew check passes), processed after an outage longer than the window allows.
    const late = context({ replayWindowMs: window, now: () => NOW + window });
    const msg = publication({ resource: patient(), iat: NOW - 1, storedAtMs: NOW });
    const e = thrown(() => checkEnvelope(msg, late));
    expect(e).toMatchObject({ code: 'E_CLOCK_SKEW', path: 'iat' });
    expect(e.message).toContain('older than the replay window');
    // Just inside the bound it is still checked normally.
    const inTime = context({ replayWindowMs: window, now: () => NOW - 1 + window - SKEW_MS });
    expect(checkEnvelope(msg, inTime).env.id).toBe('msg-0001');
  });

  it('a sealed delivery larger than NATS carries is withheld for that subscriber only, with E_TOO_LARGE', () => {
    const msg = publication({ resource: patient(), id: 'big-1' });
    const full = routeMessage(checkEnvelope(msg, context()), context());
    const sizes = full.deliveries.map((d) => d.bytes.byteLength).sort((a, b) => a - b);
    const limit = (sizes[sizes.length - 1] ?? 0) - 1; // the largest delivery no longer fits
    const ctx = context({ maxDeliveryBytes: limit });
    const routed = routeMessage(checkEnvelope(msg, ctx), ctx);
    expect(routed.deliveries.length).toBe(full.deliveries.length - 1);
    expect(routed.withheld).toHaveLength(1);
    expect(routed.withheld[0]?.error).toMatchObject({ code: 'E_TOO_LARGE' });
    expect(routed.withheld[0]?.error.message).toMatch(/^the sealed delivery is \d+ bytes; NATS carries at most \d+$/);
    for (const d of routed.deliveries) expect(d.bytes.byteLength).toBeLessThanOrEqual(limit);
  });
});

describe('routeMessage: under unresolved: reject, a patient that does not resolve is refused before any copy is made', () => {
  const pseudonymOf = (ref: string): string => `ps(${ref})`;
  /** A context that records each subscriber whose copy routeMessage started (its projection asks for that subscriber's pseudonymizer first). */
  function watched(unresolved: 'accept' | 'reject'): { ctx: ReturnType<typeof context>; started: string[] } {
    const started: string[] = [];
    const plain = context();
    const ctx = context({
      routes: heldRoutes(),
      patients: { rule: { match: 'reference', unresolved }, pseudonymOf },
      pseudonymizerFor: (s) => (started.push(s), plain.pseudonymizerFor(s)),
    });
    return { ctx, started };
  }
  const group = {
    resourceType: 'Observation',
    id: 'obs-g1',
    status: 'final',
    code: { text: 'pulse' },
    subject: { reference: 'Group/g1' },
  };

  it('a resource on its own: E_PATIENT_UNRESOLVED without a path, and no subscriber projected, sealed or signed', () => {
    const msg = publication({ from: 'ehr', resource: group });
    const { ctx, started } = watched('reject');
    const e = thrown(() => routeMessage(checkEnvelope(msg, ctx), ctx));
    expect([e.code, e.path, e.message]).toEqual([
      'E_PATIENT_UNRESOLVED',
      undefined,
      "no patient resolves under the catalog's matching rule (match reference)",
    ]);
    expect(started).toEqual([]);
    // the same message under `unresolved: accept` is routed to every subscriber of Observation
    const accepting = watched('accept');
    const routed = routeMessage(checkEnvelope(msg, accepting.ctx), accepting.ctx);
    expect(routed.deliveries.length).toBeGreaterThan(0);
    expect(accepting.started).toEqual(
      heldRoutes()
        .get('Observation')
        ?.subscribers.map((s) => s.service),
    );
    expect(accepting.started.length).toBeGreaterThan(0);
  });

  it('a Bundle that travels whole: the first entry whose patient does not resolve is named by its path', () => {
    const bundle = {
      resourceType: 'Bundle',
      id: 'b-1',
      type: 'collection',
      entry: [{ resource: { ...group, id: 'obs-p1', subject: { reference: 'Patient/p1' } } }, { resource: group }],
    };
    const { ctx, started } = watched('reject');
    const e = thrown(() => routeMessage(checkEnvelope(publication({ resource: bundle }), ctx), ctx));
    expect([e.code, e.path, e.message]).toEqual([
      'E_PATIENT_UNRESOLVED',
      'Bundle.entry[1].resource',
      "Bundle.entry[1].resource: no patient resolves under the catalog's matching rule (match reference)",
    ]);
    expect(started).toEqual([]);
  });
});
