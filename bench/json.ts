// The cost of strict, number-exact JSON (src/wire/json.ts), CPU µs per message, against JSON.parse on the same text
// measured in the same run: the broker's envelope parse (ingest bytes of a ~1.6 KB Patient and of an Observation
// with decimals), opening every sealed leaf (the leaf parse inside it), and the SDK's delivery text. Run:
// `npm run build && node dist/bench/json.js`. Prints a table; gates nothing.
import { initCrypto } from '../src/crypto/sodium.js';
import { generateServiceKeys, publicRecords } from '../src/crypto/keys.js';
import { Keyring } from '../src/crypto/keyring.js';
import { openEnvelope, parseEnvelope } from '../src/envelope/open.js';
import { sealEnvelope } from '../src/envelope/seal.js';
import { parseJsonText, stringifyJson } from '../src/wire/json.js';
import { observation, patient } from './resources.js';

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU µs per call of `fn`, over at least `budgetMs` of CPU after a warm-up. */
function measure(fn: () => unknown, budgetMs = 400): number {
  const warm = cpuUs();
  while (cpuUs() - warm < budgetMs * 250) fn();
  let n = 0;
  const start = cpuUs();
  while (cpuUs() - start < budgetMs * 1000) {
    for (let k = 0; k < 50; k++) fn();
    n += 50;
  }
  return (cpuUs() - start) / n;
}

/** Distinct sealed messages parsed in turn. */
const POOL = 256;

/** An Observation with decimals written as FHIR users write them: trailing zeros a double drops. */
function decimalObservationText(): string {
  const o = observation(1) as unknown as Record<string, unknown>;
  o['valueQuantity'] = { value: 6.3, unit: 'mmol/l', system: 'http://unitsofmeasure.org', code: 'mmol/L' };
  delete o['component'];
  o['referenceRange'] = [{ low: { value: 3.9 }, high: { value: 5.5 } }];
  return JSON.stringify(o).replace('"value":6.3', '"value":6.30').replace('"value":5.5', '"value":5.50');
}

async function main(): Promise<void> {
  await initCrypto();
  const sender = generateServiceKeys('registration', 1);
  const broker = generateServiceKeys('broker', 1);
  const publics = [...publicRecords(sender), ...publicRecords(broker)];
  const senderRing = new Keyring(sender, publics);
  const brokerRing = new Keyring(broker, publics);
  const inputs: [string, string][] = [
    ['Patient (~1.6 KB)', JSON.stringify(patient(1))],
    ['Observation, decimals', decimalObservationText()],
  ];
  const rows: string[][] = [];
  for (const [label, text] of inputs) {
    const parsed = parseJsonText(text);
    if (!('value' in parsed)) throw new Error('bench input is not JSON');
    const resource = parsed.value as Record<string, unknown>;
    const seal = (id: string) =>
      sealEnvelope({
        id,
        iss: 'registration',
        iat: Date.now(),
        typ: String(resource['resourceType']),
        resource,
        signer: sender.sign,
        recipients: [{ id: 'broker', kek: senderRing.kekFor('broker:enc:1') }],
      });
    const sealed = seal('bench-json-1');
    const envText = Buffer.from(sealed.bytes).toString('utf8');
    const env = parseEnvelope(sealed.bytes);
    // Envelopes of different messages in turn, as a broker and a subscriber see them: parsing one text again and
    // again measures V8 on a string it has seen, which for the string scan is not the same cost.
    const pool = Array.from({ length: POOL }, (_, k) => seal(`bench-json-${k + 2}`).bytes);
    let next = 0;
    const kek = (id: string) => brokerRing.kekForId(id);
    const opened = openEnvelope(env, 'broker', kek);
    const figures: [string, number, number][] = [
      ['envelope text', measure(() => JSON.parse(envText)), measure(() => parseJsonText(envText))],
      ['parseEnvelope, one envelope again', 0, measure(() => parseEnvelope(sealed.bytes))],
      [`parseEnvelope, ${POOL} envelopes in turn`, 0, measure(() => parseEnvelope(pool[next++ % POOL] as Uint8Array))],
      ['openEnvelope (after: leaf lexemes)', 0, measure(() => openEnvelope(env, 'broker', kek))],
      ['resource text (publish input)', measure(() => JSON.parse(text)), measure(() => parseJsonText(text))],
      ['delivery: resource + resourceJson', 0, measure(() => JSON.parse(stringifyJson(opened)) as unknown)],
    ];
    for (const [what, before, after] of figures)
      rows.push([
        label,
        what,
        before === 0 ? '' : before.toFixed(1),
        after.toFixed(1),
        before === 0 ? '' : `${(after / before).toFixed(1)}×`,
      ]);
    rows.push([label, `(envelope ${sealed.bytes.byteLength} B, resource ${text.length} B)`, '', '', '']);
  }
  const head = ['input', 'step', 'JSON.parse µs', 'strict µs', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}\n`);
}

await main();
