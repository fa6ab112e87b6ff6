// Builds the envelope test vectors (test/vectors/envelope-v1.json) from the fixed specs below: keys from fixed seeds,
// randomness from a SHA-256 counter stream that is then RECORDED in the vector (hex, in the order drawn), so the
// vectors need no generator to replay. Regenerate only on purpose: `UPDATE_VECTORS=1 npx vitest run test/vectors`.
import { createHash } from 'node:crypto';
import { toBase64url } from '../../src/crypto/base64url.js';
import { sealBlob } from '../../src/crypto/aead.js';
import { deriveKek } from '../../src/crypto/kek.js';
import { encryptionKeyFromSecret, signingKeyFromSeed, type ServiceKeys } from '../../src/crypto/keys.js';
import { fixedRandom, type RandomSource } from '../../src/crypto/random.js';
import { signDetached } from '../../src/crypto/sign.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { parseJsonText } from '../../src/wire/json.js';
import type { Provenance } from '../../src/envelope/types.js';
import { streamRandom } from '../envelope/parties.js';

export interface PartyVector {
  sigSeed: string;
  sigPublic: string;
  encSecret: string;
  encPublic: string;
}
export interface CaseInput {
  id: string;
  iss: string;
  iat: number;
  typ: string;
  resource?: unknown;
  /** The resource as JSON text, for number lexemes a JS object cannot hold (`6.30`, `-0`); parsed with src/wire/json.ts. */
  resourceJson?: string;
  rawUtf8?: string;
  recipients: string[];
  prov?: Provenance;
}
export interface CaseVector {
  name: string;
  input: CaseInput;
  random: string;
  envelope: string;
  sig: string;
  sha256: string;
}
export interface AeadVector {
  key: string;
  nonce: string;
  aad: string;
  plaintext: string;
  sealed: string;
}
/** Signed bytes a reader must refuse before anything else (docs/wire-format.md, "Numbers and duplicate members"). */
export interface RefusedVector {
  name: string;
  /** base64 of the bytes, signed by `iss` (the signature verifies: only the parse refuses them). */
  envelope: string;
  iss: string;
  sig: string;
  code: string;
  path: string;
}
export interface VectorFile {
  description: string;
  parties: Record<string, PartyVector>;
  keks: { id: string; key: string }[];
  aead: AeadVector[];
  cases: CaseVector[];
  refused: RefusedVector[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const fixedBytes = (label: string): Uint8Array =>
  new Uint8Array(createHash('sha256').update(`phi-broker test vector ${label}`).digest());

export function partyKeys(service: string, v: PartyVector): ServiceKeys {
  return {
    service,
    sign: signingKeyFromSeed(`${service}:sig:1`, unhex(v.sigSeed)),
    enc: encryptionKeyFromSecret(`${service}:enc:1`, unhex(v.encSecret)),
  };
}

/** Replays `random` (hex) and reports what was drawn — the envelope's randomness, recorded for the vector. */
function recording(source: RandomSource): RandomSource & { drawn: Uint8Array[] } {
  const drawn: Uint8Array[] = [];
  return Object.assign(
    (n: number) => {
      const b = source(n);
      drawn.push(Uint8Array.from(b));
      return b;
    },
    { drawn },
  );
}

const SPECS: { name: string; input: CaseInput }[] = [
  {
    name: 'patient-two-recipients',
    input: {
      id: 'vec-0001',
      iss: 'registration',
      iat: 1_700_000_000_000,
      typ: 'Patient',
      recipients: ['broker', 'billing'],
      resource: {
        resourceType: 'Patient',
        id: 'vec-pat',
        active: true,
        multipleBirthInteger: 2,
        meta: {
          profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
          security: [
            {
              system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
              version: '2018-08-12',
              code: 'PSY',
              display: 'psychiatry information sensitivity',
              userSelected: false,
            },
          ],
        },
        name: [
          {
            family: 'Testperson',
            given: ['Vector', 'Quinn'],
            _given: [null, { extension: [{ url: 'urn:x', valueBoolean: false }] }],
          },
        ],
        birthDate: '1980-02-29',
      },
    },
  },
  {
    name: 'observation-contained-broker-delivery',
    input: {
      id: 'vec-0002.billing',
      iss: 'broker',
      iat: 1_700_000_000_500,
      typ: 'Observation',
      recipients: ['billing'],
      prov: {
        src: 'registration',
        mid: 'vec-0002',
        hash: toBase64url(fixedBytes('original')),
        profile: 'https://example.org/fhir/StructureDefinition/billing-observation',
        purpose: 'HPAYMT',
        at: 1_700_000_000_000,
      },
      resource: {
        resourceType: 'Observation',
        status: 'final',
        contained: [{ resourceType: 'Patient', id: 'p1', gender: 'female' }],
        code: { text: 'Glucose' },
        subject: { reference: '#p1' },
        valueQuantity: { value: 6.3, unit: 'mmol/l' },
      },
    },
  },
  {
    name: 'raw-not-json',
    input: {
      id: 'vec-0003',
      iss: 'registration',
      iat: 1_700_000_001_000,
      typ: '$raw',
      recipients: ['broker'],
      rawUtf8: '{"resourceType":"Patient", name: Vector Testperson',
    },
  },
  {
    // Number lexemes a double cannot hold, a non-ASCII key (written as UTF-8) and a lone-surrogate key (written as
    // the escape \ud800, as JSON.stringify writes it; its AAD path is Basic["\ud800"], ASCII).
    name: 'basic-number-lexemes-and-keys',
    input: {
      id: 'vec-0004',
      iss: 'registration',
      iat: 1_700_000_002_000,
      typ: 'Basic',
      recipients: ['broker'],
      resourceJson:
        '{"resourceType":"Basic","id":"vec-lexemes","trailingZero":6.30,"bigInteger":12345678901234567890,' +
        '"negativeZero":-0,"exponent":1.0e2,"Größe":"non-ASCII key","\\ud800":"lone-surrogate key"}',
    },
  },
];

/** The `basic-number-lexemes-and-keys` envelope with a second `body` member: signed, and refused by the parser. */
function duplicateBody(c: CaseVector, keys: Record<string, ServiceKeys>): RefusedVector {
  const text = Buffer.from(c.envelope, 'base64').toString('utf8');
  const at = text.indexOf('"body":');
  const bytes = Buffer.from(`${text.slice(0, at)}"body":{"resourceType":"Basic"},${text.slice(at)}`, 'utf8');
  const signer = (keys[c.input.iss] as ServiceKeys).sign;
  return {
    name: 'duplicate-body-member',
    envelope: bytes.toString('base64'),
    iss: c.input.iss,
    sig: toBase64url(signDetached(new Uint8Array(bytes), signer.secretKey)),
    code: 'E_ENVELOPE_INVALID',
    path: 'body',
  };
}

export function buildVectors(): VectorFile {
  const parties: Record<string, PartyVector> = {};
  const keys: Record<string, ServiceKeys> = {};
  for (const service of ['registration', 'broker', 'billing']) {
    const seed = fixedBytes(`${service} sig`);
    const secret = fixedBytes(`${service} enc`);
    const k: ServiceKeys = {
      service,
      sign: signingKeyFromSeed(`${service}:sig:1`, seed),
      enc: encryptionKeyFromSecret(`${service}:enc:1`, secret),
    };
    keys[service] = k;
    parties[service] = {
      sigSeed: hex(seed),
      sigPublic: hex(k.sign.publicKey),
      encSecret: hex(secret),
      encPublic: hex(k.enc.publicKey),
    };
  }
  const kekOf = (a: string, b: string) => deriveKek((keys[a] as ServiceKeys).enc, (keys[b] as ServiceKeys).enc);
  const keks = [kekOf('registration', 'broker'), kekOf('registration', 'billing'), kekOf('broker', 'billing')].map(
    (k) => ({ id: k.id, key: hex(k.key) }),
  );

  const aeadKey = fixedBytes('aead key');
  const aeadNonce = fixedBytes('aead nonce').subarray(0, 24);
  const aad = Buffer.from('v1|vec-0001|Patient.name[0].family|dk', 'utf8');
  const plaintext = Buffer.from('"Testperson"', 'utf8');
  const aead = [
    {
      key: hex(aeadKey),
      nonce: hex(aeadNonce),
      aad: hex(aad),
      plaintext: hex(plaintext),
      sealed: hex(sealBlob(aeadKey, plaintext, aad, fixedRandom(aeadNonce))),
    },
  ];

  const cases = SPECS.map(({ name, input }) => {
    const random = recording(streamRandom(`vector ${name}`));
    const sealed = sealCase(input, keys, random);
    return {
      name,
      input,
      random: Buffer.concat(random.drawn).toString('hex'),
      envelope: Buffer.from(sealed.bytes).toString('base64'),
      sig: sealed.sig,
      sha256: createHash('sha256').update(sealed.bytes).digest('base64url'),
    };
  });
  const lexemes = cases.find((c) => c.name === 'basic-number-lexemes-and-keys') as CaseVector;
  return {
    description: 'phi-broker envelope v1 test vectors; see docs/wire-format.md. Hex unless named base64/base64url.',
    parties,
    keks,
    aead,
    cases,
    refused: [duplicateBody(lexemes, keys)],
  };
}

function resourceOf(text: string): unknown {
  const r = parseJsonText(text);
  if (!('value' in r)) throw new Error('vector resourceJson is not strict JSON');
  return r.value;
}

export function sealCase(
  input: CaseInput,
  keys: Record<string, ServiceKeys>,
  random: RandomSource,
): { bytes: Uint8Array; sig: string } {
  const sender = keys[input.iss] as ServiceKeys;
  return sealEnvelope({
    id: input.id,
    iss: input.iss,
    iat: input.iat,
    typ: input.typ,
    resource:
      input.rawUtf8 !== undefined
        ? { raw: new Uint8Array(Buffer.from(input.rawUtf8, 'utf8')) }
        : input.resourceJson !== undefined
          ? resourceOf(input.resourceJson)
          : input.resource,
    signer: sender.sign,
    recipients: input.recipients.map((id) => ({ id, kek: deriveKek(sender.enc, (keys[id] as ServiceKeys).enc) })),
    ...(input.prov === undefined ? {} : { prov: input.prov }),
    random,
  });
}
