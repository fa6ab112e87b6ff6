// The plaintext allow-list of envelope v1 (docs/wire-format.md, "Plaintext allow-list"): only resourceType, a
// meta.profile array of canonical URLs, and `system` + `code` of each meta.security coding stay readable; every
// other member of a security coding (display, version, userSelected, id, extension) and any meta.profile that is
// not all canonical URLs is sealed — and still opens to exactly what was sealed.
import { beforeAll, describe, expect, it } from 'vitest';
import { initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, verifySignedEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { makeParties, type Parties } from './parties.js';
import { withJsNumbers } from '../helpers/json.js';

let p: Parties;
beforeAll(async () => {
  await initCrypto();
  p = makeParties();
});

const SEALED = /^[A-Za-z0-9_-]{54,}$/;
const CONF = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';

type Body = {
  meta: { profile?: unknown[]; security?: unknown[]; tag?: unknown[]; versionId?: unknown };
  contained?: { meta: Body['meta'] }[];
};

/** Seals `resource`, checks it opens deep-equal, and returns the sealed body as sent. */
function sealedBody(resource: Record<string, unknown>): Body {
  const s = sealEnvelope({
    id: 'pt-1',
    iss: 'registration',
    iat: 1,
    typ: resource['resourceType'] as string,
    resource,
    signer: p.keys.registration.sign,
    recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
  });
  const env = verifySignedEnvelope(s.bytes, s.sig, p.rings.broker);
  expect(withJsNumbers(openEnvelope(env, 'broker', (id) => p.rings.broker.kekForId(id)))).toStrictEqual(resource);
  return (JSON.parse(Buffer.from(s.bytes).toString('utf8')) as { body: Body }).body;
}

describe('meta.security: only system and code of each coding stay readable', () => {
  it('seals display, version, userSelected, id and extension of a coding; keeps system and code', () => {
    const coding = {
      id: 'sec-1',
      extension: [{ url: 'urn:example:who', valueString: 'Zebulon Quillfeather' }],
      system: ACT,
      version: '2018-08-12',
      code: 'PSY',
      display: 'Zebulon Quillfeather',
      userSelected: true,
    };
    const body = sealedBody({ resourceType: 'Patient', meta: { security: [coding, { system: CONF, code: 'R' }] } });
    const [first, second] = body.meta.security as Record<string, unknown>[];
    expect(Object.keys(first ?? {})).toStrictEqual(Object.keys(coding));
    expect(first?.['system']).toBe(ACT);
    expect(first?.['code']).toBe('PSY');
    for (const k of ['id', 'version', 'display', 'userSelected']) expect(first?.[k], k).toMatch(SEALED);
    const ext = (first?.['extension'] as Record<string, unknown>[])[0];
    expect(ext?.['url']).toMatch(SEALED);
    expect(ext?.['valueString']).toMatch(SEALED);
    expect(second).toStrictEqual({ system: CONF, code: 'R' });
  });

  it('seals the primitive extensions of system and code, and anything that is not a coding object', () => {
    const body = sealedBody({
      resourceType: 'Patient',
      meta: {
        security: [
          { system: CONF, _code: { extension: [{ url: 'urn:x', valueString: 'note' }] }, code: 'R' },
          'R',
          [CONF, 'R'],
          null,
        ],
      },
    });
    const [coding, str, arr, nul] = body.meta.security as unknown[];
    expect((coding as Record<string, unknown>)['code']).toBe('R');
    const ext = (coding as { _code: { extension: Record<string, unknown>[] } })._code.extension[0];
    expect(ext?.['url']).toMatch(SEALED);
    expect(str).toMatch(SEALED);
    expect((arr as unknown[])[0]).toMatch(SEALED);
    expect((arr as unknown[])[1]).toMatch(SEALED);
    expect(nul).toMatch(SEALED);
  });

  it('a contained resource follows the same rule; meta.tag, versionId and other meta members are sealed', () => {
    const body = sealedBody({
      resourceType: 'Observation',
      meta: {
        versionId: '3',
        tag: [{ system: CONF, code: 'R' }],
        security: [{ system: CONF, code: 'N', display: 'normal' }],
      },
      contained: [
        { resourceType: 'Patient', meta: { security: [{ system: CONF, code: 'V', display: 'very restricted' }] } },
      ],
    });
    expect(body.meta.versionId).toMatch(SEALED);
    expect((body.meta.tag as Record<string, unknown>[])[0]?.['code']).toMatch(SEALED);
    const inner = body.contained?.[0]?.meta.security as Record<string, unknown>[];
    expect(inner[0]?.['code']).toBe('V');
    expect(inner[0]?.['display']).toMatch(SEALED);
  });
});

describe('meta.profile: readable only as an array of canonical URLs', () => {
  it('keeps an array of http(s) / urn canonical URLs (with |version) readable', () => {
    const profile = [
      'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient',
      'https://example.org/fhir/StructureDefinition/p|1.0.0',
      'urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7',
    ];
    expect(sealedBody({ resourceType: 'Patient', meta: { profile } }).meta.profile).toStrictEqual(profile);
  });

  it.each([
    ['free text among URLs', ['http://hl7.org/fhir/StructureDefinition/Patient', 'Zebulon Quillfeather']],
    ['a URL with a space', ['http://example.org/Zebulon Quillfeather']],
    ['a relative reference', ['StructureDefinition/zebulon']],
    ['another scheme', ['mailto:zebulon@example.org']],
    ['a number', ['http://hl7.org/fhir/StructureDefinition/Patient', 42]],
    ['an object', [{ url: 'http://hl7.org/fhir/StructureDefinition/Patient' }]],
  ])('seals every member when one is not a canonical URL: %s', (_name, profile) => {
    const sealed = sealedBody({ resourceType: 'Patient', meta: { profile } }).meta.profile as unknown[];
    expect(sealed).toHaveLength(profile.length);
    for (let i = 0; i < profile.length; i++) {
      if (typeof profile[i] === 'object') expect((sealed[i] as Record<string, unknown>)['url']).toMatch(SEALED);
      else expect(sealed[i]).toMatch(SEALED);
    }
  });

  it('seals a meta.profile that is not an array, and _profile', () => {
    const body = sealedBody({
      resourceType: 'Patient',
      meta: { profile: 'http://hl7.org/fhir/StructureDefinition/Patient', _profile: [{ id: 'x' }] },
    });
    expect(body.meta.profile).toMatch(SEALED);
    expect(((body.meta as Record<string, unknown>)['_profile'] as Record<string, unknown>[])[0]?.['id']).toMatch(
      SEALED,
    );
  });
});
