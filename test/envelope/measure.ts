// Measures (prints, never asserts) the envelope hot path on hl7/patient-example.json: seal, parse, verify, open, and
// Ed25519 sign/verify of the envelope bytes with both backends. Run: npx tsx test/envelope/measure.ts
// (a figure for the report; bench/ holds the project benchmarks).
import { fromBase64url } from '../../src/crypto/base64url.js';
import { signDetached, sodiumEd25519, verifyDetached } from '../../src/crypto/sign.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, parseEnvelope, verifyEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { HAVE_EXAMPLES, readExample } from '../fhir/examples.js';
import { makeParties } from './parties.js';

await initCrypto();
if (!HAVE_EXAMPLES) throw new Error('no FHIR examples (set PHI_BROKER_FHIR_EXAMPLES)');
const p = makeParties();
const resource = readExample('hl7/patient-example.json') as Record<string, unknown>;
const one = [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }];
const three = [
  ...one,
  { id: 'billing', kek: p.rings.registration.kekFor('billing:enc:1') },
  { id: 'research', kek: p.rings.registration.kekFor('research:enc:1') },
];
const seal = (recipients: typeof one) =>
  sealEnvelope({
    id: 'm-1',
    iss: 'registration',
    iat: 1,
    typ: 'Patient',
    resource,
    signer: p.keys.registration.sign,
    recipients,
  });
const sealed = seal(one);
const env = parseEnvelope(sealed.bytes);
const kek = p.rings.broker.kekForId(env.keys[0]!.kek);
const sig = fromBase64url(sealed.sig)!;
const pk = p.keys.registration.sign.publicKey;

function time(name: string, f: () => unknown, n = 4000): void {
  for (let i = 0; i < n / 4; i++) f();
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    runs.push(Number(process.hrtime.bigint() - t0) / n / 1000);
  }
  runs.sort((a, b) => a - b);
  process.stdout.write(`${name.padEnd(44)} ${runs[0]!.toFixed(1).padStart(7)} µs (median ${runs[2]!.toFixed(1)})\n`);
}

process.stdout.write(
  `patient-example.json: ${JSON.stringify(resource).length} B JSON → envelope ${sealed.bytes.length} B\n`,
);
time('seal (1 recipient, incl. sign)', () => seal(one));
time('seal (3 recipients, incl. sign)', () => seal(three));
time('parseEnvelope', () => parseEnvelope(sealed.bytes));
time('verifyEnvelope', () => verifyEnvelope(sealed.bytes, sealed.sig, pk));
time('openEnvelope (unwrap + leaves)', () => openEnvelope(env, 'broker', kek));
time('parse + verify + open', () =>
  openEnvelope((verifyEnvelope(sealed.bytes, sealed.sig, pk), parseEnvelope(sealed.bytes)), 'broker', kek),
);
time('sign envelope bytes (node:crypto)', () => signDetached(sealed.bytes, p.keys.registration.sign.secretKey));
time('verify envelope bytes (node:crypto)', () => verifyDetached(sealed.bytes, sig, pk));
time('sign envelope bytes (libsodium)', () => sodiumEd25519.sign(sealed.bytes, p.keys.registration.sign.secretKey));
time('verify envelope bytes (libsodium)', () => sodiumEd25519.verify(sealed.bytes, sig, pk));
