// Round trip of every FHIR example (hl7/ files, and each entry resource of the synthea/ Bundles): seal → verify →
// open gives back a deep-equal resource, for the broker and for a second recipient of the same envelope.
import { beforeAll, describe, expect, it } from 'vitest';
import { initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, parseEnvelope, verifyEnvelope, verifySignedEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { HAVE_EXAMPLES, SKIP_NOTE, listExamples, readExample } from '../fhir/examples.js';
import { makeParties, syntheticPatient, type Parties } from './parties.js';
import { withJsNumbers } from '../helpers/json.js';

let p: Parties;
beforeAll(async () => {
  await initCrypto();
  p = makeParties();
});

function roundTrip(resource: Record<string, unknown>, id: string): void {
  const typ = resource['resourceType'] as string;
  const sealed = sealEnvelope({
    id,
    iss: 'registration',
    iat: 1_700_000_000_000,
    typ,
    resource,
    signer: p.keys.registration.sign,
    recipients: [
      { id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') },
      { id: 'billing', kek: p.rings.registration.kekFor('billing:enc:1') },
    ],
  });
  const env = verifySignedEnvelope(sealed.bytes, sealed.sig, p.rings.broker);
  expect(withJsNumbers(openEnvelope(env, 'broker', (kekId) => p.rings.broker.kekForId(kekId)))).toStrictEqual(resource);
  const again = parseEnvelope(sealed.bytes);
  verifyEnvelope(sealed.bytes, sealed.sig, p.keys.registration.sign.publicKey);
  expect(withJsNumbers(openEnvelope(again, 'billing', p.rings.billing.kekFor('registration:enc:1')))).toStrictEqual(
    resource,
  );
}

describe('round trip, synthetic', () => {
  it('a synthetic Patient with nulls, booleans, numbers and primitive extensions', () => {
    roundTrip(syntheticPatient(), 'syn-1');
  });

  it('odd keys and values: dots, brackets, quotes, __proto__, empty containers, unicode, lone surrogates', () => {
    const odd = JSON.parse(
      '{"resourceType":"Basic","a.b":"x","a":{"b":"y"},"q\\"k":[1,2.5,-0.001,1e21],"__proto__":{"p":"v"},"e":{},"l":[],"u":"\\u202f\\ud83d\\ude00\\ud800","n":[null,[null,[]]]}',
    ) as Record<string, unknown>;
    roundTrip(odd, 'syn-2');
  });
});

describe.skipIf(!HAVE_EXAMPLES)(`round trip, /work/shared/fhir-examples${SKIP_NOTE}`, () => {
  it.each(listExamples('hl7'))('hl7/%s', (file) => {
    roundTrip(readExample(`hl7/${file}`) as Record<string, unknown>, `hl7-${file.replace(/[^A-Za-z0-9]/g, '-')}`);
  });

  it.each(listExamples('synthea'))('synthea/%s, every entry resource', (file) => {
    const bundle = readExample(`synthea/${file}`) as { entry: { resource?: Record<string, unknown> }[] };
    let n = 0;
    for (const entry of bundle.entry) {
      if (entry.resource === undefined) continue;
      roundTrip(entry.resource, `syn-${n++}`);
    }
    expect(n).toBeGreaterThan(50);
  });
});
