// The `partner:` block of an external service: compiled and frozen when valid; every mistake (not external, a
// duplicate client id or kid, a private key member, a scope wider than the topics allow or not a SMART v2 system
// scope, a non-https hook or JWKS URL, jwks and jwksUrl both or neither, a malformed mTLS subject DN) stops the
// catalog with its file, path and line.
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import { SERVICES, catalogFiles } from './fixtures.js';

const KEY = `{ kty: EC, crv: P-384, kid: k1, x: AAAA, y: BBBB }`;

/** The fixture catalog plus a partner service `payer` (receives Patient via a topic file) with this partner block. */
function compile(partner: string, opts: { external?: boolean; extraService?: string } = {}) {
  const services = `${SERVICES}  - id: payer
    owner: payer-relations
    description: Partner.
    classification: phi
    external: ${opts.external === false ? 'false' : 'true'}
    partner:
${partner
  .split('\n')
  .map((l) => `      ${l}`)
  .join('\n')}
${opts.extraService ?? ''}`;
  const topics = `topics:
  Patient:
    publishers: [front-desk, payer]
    subscribers:
      - { service: clinic, profile: patient-all, purpose: TREAT }
  Observation:
    publishers: [clinic]
    subscribers:
      - { service: research, profile: obs-deid, purpose: HRESCH }
      - { service: payer, profile: obs-deid, purpose: HPAYMT }
`;
  return compileCatalog(catalogFiles({ 'subjects/services.yaml': services, 'subjects/topics.yaml': topics }));
}

const issues = (r: ReturnType<typeof compile>): [string, string, number | undefined][] =>
  r.issues.map((i) => [i.path, i.message, i.line]);

describe('partner: registration of an external service with the gateway', () => {
  it('compiles a valid block, frozen, with defaults for rate limit and hooks, and it changes the catalog hash', () => {
    const r = compile(
      `clientId: payer-client\njwks: { keys: [${KEY}] }\nscopes: [system/Patient.c, system/Observation.rs]`,
    );
    expect(r.issues).toEqual([]);
    const partner = r.catalog?.services.get('payer')?.partner;
    expect(partner).toEqual({
      clientId: 'payer-client',
      jwks: { keys: [{ kty: 'EC', crv: 'P-384', kid: 'k1', x: 'AAAA', y: 'BBBB' }] },
      scopes: ['system/Patient.c', 'system/Observation.rs'],
      rateLimit: { max: 60, windowSeconds: 60 },
      restHooks: [],
    });
    expect(Object.isFrozen(partner)).toBe(true);
    expect(Object.isFrozen(partner?.jwks?.keys[0])).toBe(true);
    expect(r.catalog?.services.get('clinic')?.partner).toBeUndefined();
    const other = compile(`clientId: payer-client\njwks: { keys: [${KEY}] }\nscopes: [system/Patient.c]`);
    expect(other.catalog?.hash).not.toBe(r.catalog?.hash);
  });

  it('refuses scopes wider than what the topics let the partner publish and receive, naming each', () => {
    const r = compile(
      `clientId: payer-client\njwks: { keys: [${KEY}] }\nscopes:\n  - system/Patient.cr\n  - system/Observation.crs\n  - system/Observation.rud\n  - patient/Observation.rs\n  - system/*.rs\n  - system/Patient.c`,
    );
    expect(r.catalog).toBeUndefined();
    expect(issues(r)).toEqual([
      [
        'services[3].partner.scopes[0]',
        "scope 'system/Patient.cr' is wider than the catalog allows: 'payer' does not receive Patient (topics.Patient.subscribers)",
        23,
      ],
      [
        'services[3].partner.scopes[1]',
        "scope 'system/Observation.crs' is wider than the catalog allows: 'payer' does not publish Observation (topics.Observation.publishers)",
        24,
      ],
      [
        'services[3].partner.scopes[2]',
        "scope 'system/Observation.rud' is wider than the catalog allows: the gateway grants no 'd' (update/delete): partners create (c), read and search (rs)",
        25,
      ],
      [
        'services[3].partner.scopes[2]',
        "scope 'system/Observation.rud' is wider than the catalog allows: the gateway grants no 'u' (update/delete): partners create (c), read and search (rs)",
        25,
      ],
      [
        'services[3].partner.scopes[3]',
        "'patient/Observation.rs' is not a SMART v2 system scope: expected system/<ResourceType>.<permissions in cruds order>, e.g. system/Coverage.rs",
        26,
      ],
      [
        'services[3].partner.scopes[4]',
        "'system/*.rs' is not a SMART v2 system scope: expected system/<ResourceType>.<permissions in cruds order>, e.g. system/Coverage.rs",
        27,
      ],
    ]);
    expect(r.issues.every((i) => i.file === 'subjects/services.yaml')).toBe(true);
  });

  it('refuses a block on an internal service, a reused client id or kid, private key members and bad shapes', () => {
    const internal = compile(`clientId: c1\njwks: { keys: [${KEY}] }\nscopes: [system/Patient.c]`, { external: false });
    expect(issues(internal)).toEqual([
      [
        'services[3].partner',
        "only an external service (external: true) is a partner of the gateway; 'payer' is not",
        20,
      ],
    ]);
    const dup = compile(
      `clientId: c1\njwks: { keys: [${KEY}, ${KEY}] }\nscopes: [system/Patient.c, system/Patient.c]`,
      {
        extraService: `  - id: payer-two
    owner: x
    description: Another partner.
    classification: phi
    external: true
    partner: { clientId: c1, jwks: { keys: [${KEY}] }, scopes: [system/Patient.c] }
`,
      },
    );
    expect(issues(dup).map(([p, m]) => [p, m])).toEqual([
      ['services[3].partner.jwks.keys[1].kid', "kid 'k1' is listed twice"],
      ['services[3].partner.scopes[1]', "scope 'system/Patient.c' is listed twice"],
      ['services[4].partner.clientId', "client id 'c1' is already used by 'payer'"],
      [
        'services[4].partner.scopes[0]',
        "scope 'system/Patient.c' is wider than the catalog allows: 'payer-two' does not publish Patient (topics.Patient.publishers)",
      ],
    ]);
    const shapes = compile(
      `clientId: "has space"\njwks: { keys: [{ kty: EC, crv: P-384, kid: k1, x: AAAA, y: BBBB, d: SECRET }, { kty: oct, k: AAAA, kid: k2 }, { kty: EC, crv: P-256, kid: k3, x: A, y: B }] }\nscopes: []\nrestHooks: [http://payer.example.org/hook]`,
    );
    expect(shapes.catalog).toBeUndefined();
    const paths = issues(shapes).map(([p, m]) => `${p}: ${m}`);
    expect(paths).toContain('services[3].partner.clientId: expected a client id: letters, digits, _ or - (at most 64)');
    expect(paths).toContain("services[3].partner.jwks.keys[0]: unknown key 'd'");
    expect(paths.some((p) => p.startsWith('services[3].partner.jwks.keys[1]'))).toBe(true);
    expect(paths).toContain('services[3].partner.jwks.keys[2].crv: expected crv P-384 (ES384)');
    expect(paths).toContain('services[3].partner.scopes: expected at least one scope');
    expect(paths).toContain('services[3].partner.restHooks[0]: expected an https URL');
    // Messages quote no key material.
    expect(shapes.issues.map((i) => i.message).join('\n')).not.toContain('SECRET');
  });

  it('takes a JWKS URL instead of inline keys and an mTLS subject DN; refuses both, neither, http and a bad DN', () => {
    const url = compile(
      `clientId: c1\njwksUrl: https://payer.example.org/.well-known/jwks.json\nmtls: { subjectDn: "CN=c1,OU=partner,O=Example Payer" }\nscopes: [system/Patient.c]`,
    );
    expect(url.issues).toEqual([]);
    expect(url.catalog?.services.get('payer')?.partner).toMatchObject({
      jwksUrl: 'https://payer.example.org/.well-known/jwks.json',
      mtls: { subjectDn: 'CN=c1,OU=partner,O=Example Payer' },
    });
    expect(url.catalog?.services.get('payer')?.partner?.jwks).toBeUndefined();
    const both = compile(
      `clientId: c1\njwks: { keys: [${KEY}] }\njwksUrl: https://payer.example.org/jwks.json\nscopes: [system/Patient.c]`,
    );
    expect(issues(both).map(([p, m]) => [p, m])).toEqual([
      ['services[3].partner.jwksUrl', 'expected either jwks or jwksUrl, not both'],
    ]);
    const neither = compile(`clientId: c1\nscopes: [system/Patient.c]`);
    expect(issues(neither).map(([p, m]) => [p, m])).toEqual([
      [
        'services[3].partner.jwks',
        'expected the public keys: jwks (inline) or jwksUrl (where the partner serves them)',
      ],
    ]);
    for (const [bad, message] of [
      ['http://127.0.0.1:8080/jwks.json', 'expected an https URL'],
      ['https://user:pw@payer.example.org/jwks.json', 'expected an https URL without user, password or fragment'],
    ] as const) {
      const r = compile(`clientId: c1\njwksUrl: "${bad}"\nscopes: [system/Patient.c]`);
      expect(r.catalog).toBeUndefined();
      expect(issues(r).map(([p, m]) => [p, m])).toEqual([['services[3].partner.jwksUrl', message]]);
    }
    const dn = compile(
      `clientId: c1\njwks: { keys: [${KEY}] }\nmtls: { subjectDn: "CN=a, OU=b" }\nscopes: [system/Patient.c]`,
    );
    expect(issues(dn).map(([p]) => p)).toEqual(['services[3].partner.mtls.subjectDn']);
    const identity = compile(
      `clientId: c1\njwks: { keys: [${KEY}] }\nmtls: { subjectDn: "CN=payer,OU=service,O=phi-broker" }\nscopes: [system/Patient.c]`,
    );
    expect(issues(identity).map(([p, m]) => [p, m])).toEqual([
      [
        'services[3].partner.mtls.subjectDn',
        'a subject with O=phi-broker must have OU=partner: the other units are NATS identities, never a partner',
      ],
    ]);
  });
});
