// What batch signatures (signature version 2, docs/wire-format.md) cost against one signature per message, per
// Patient × 3 subscribers: the broker's signing (three ~4.3 KB deliveries and a ~200-byte receipt), a subscriber's
// check of one delivery and the publisher's of one receipt, for batches gathering 1 to 64 Patients. In process,
// alternated round after round; medians of CPU µs (process.cpuUsage) with [min–max] over the rounds.
//   node dist/bench/batch-sig.js [--rounds 5] [--budget-ms 200]
import { randomBytes } from 'node:crypto';
import { generateServiceKeys } from '../src/crypto/keys.js';
import { signDetached, verifyDetached } from '../src/crypto/sign.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { parseBatchProof, signBatch, verifyBatchProof, VerifiedRoots } from '../src/envelope/batch-sig.js';

const DELIVERY_BYTES = 4300;
const RECEIPT_BYTES = 200;
const FANOUT = 3;

/** CPU µs per call of `f` (one call = one Patient's or one delivery's work), after a quarter of the budget as warm-up. */
function measure(budgetMs: number, f: () => void): number {
  const spin = (ms: number): number => {
    const t0 = process.cpuUsage();
    let calls = 0;
    let us = 0;
    while (us < ms * 1000) {
      f();
      calls += 1;
      const t = process.cpuUsage(t0);
      us = t.user + t.system;
    }
    return us / calls;
  };
  spin(budgetMs / 4);
  return spin(budgetMs);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(argv: readonly string[]): Promise<void> {
  const value = (name: string, d: number): number => {
    const i = argv.indexOf(name);
    return i === -1 ? d : Number(argv[i + 1]);
  };
  const rounds = value('--rounds', 5);
  const budget = value('--budget-ms', 200);
  await initCrypto();
  const broker = generateServiceKeys('broker');
  const pk = broker.sign.publicKey;
  const patient = () => [
    ...Array.from({ length: FANOUT }, () => ({ kind: 'delivery' as const, bytes: randomBytes(DELIVERY_BYTES) })),
    { kind: 'receipt' as const, bytes: randomBytes(RECEIPT_BYTES) },
  ];
  const ops = new Map<string, () => () => void>();
  // Broker: sign one Patient's four messages.
  ops.set('broker, v1: 4 signatures', () => {
    const p = patient();
    return () => {
      for (const m of p) signDetached(m.bytes, broker.sign.secretKey);
    };
  });
  for (const b of [1, 4, 16, 64]) {
    ops.set(`broker, v2: batches of ${b} Patient(s)`, () => {
      const items = Array.from({ length: b }, patient).flat();
      let k = 0;
      let headers: string[] = [];
      // One call is one Patient: a batch is signed every b calls.
      return () => {
        if (k % b === 0) headers = signBatch(items, broker.sign);
        k += 1;
        if (headers.length === 0) throw new Error('unsigned');
      };
    });
  }
  // Subscriber: check one delivery; its batch holds `b` Patients, so b of its deliveries share a root.
  ops.set('subscriber, v1: 1 verification', () => {
    const bytes = randomBytes(DELIVERY_BYTES);
    const sig = signDetached(bytes, broker.sign.secretKey);
    return () => {
      if (!verifyDetached(bytes, sig, pk)) throw new Error('bad');
    };
  });
  for (const b of [1, 4, 16, 64]) {
    ops.set(`subscriber, v2: ${b} own deliveries per batch`, () => {
      const batches = Array.from({ length: 64 }, () => {
        const items = Array.from({ length: b }, patient).flat();
        return { items, headers: signBatch(items, broker.sign) };
      });
      let k = 0;
      let roots = new VerifiedRoots();
      return () => {
        // The subscriber's own deliveries: message j's first delivery, j = 0 … b − 1 of batch k / b.
        const batch = batches[Math.floor(k / b) % batches.length]!;
        const j = (k % b) * (FANOUT + 1);
        if (k % (b * batches.length) === 0) roots = new VerifiedRoots();
        k += 1;
        verifyBatchProof('delivery', batch.items[j]!.bytes, parseBatchProof(batch.headers[j]!), pk, roots);
      };
    });
  }
  ops.set('publisher, v1: 1 receipt verification', () => {
    const bytes = randomBytes(RECEIPT_BYTES);
    const sig = signDetached(bytes, broker.sign.secretKey);
    return () => {
      if (!verifyDetached(bytes, sig, pk)) throw new Error('bad');
    };
  });
  ops.set('publisher, v2: receipt alone in its root', () => {
    const batches = Array.from({ length: 64 }, () => {
      const items = patient();
      return { items, headers: signBatch(items, broker.sign) };
    });
    let k = 0;
    return () => {
      const batch = batches[k++ % batches.length]!;
      verifyBatchProof(
        'receipt',
        batch.items[FANOUT]!.bytes,
        parseBatchProof(batch.headers[FANOUT]!),
        pk,
        new VerifiedRoots(),
      );
    };
  });
  const results = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const [name, make] of ops) {
      const list = results.get(name) ?? [];
      list.push(measure(budget, make()));
      results.set(name, list);
    }
    process.stderr.write(`round ${r + 1}/${rounds}\n`);
  }
  process.stdout.write(
    `CPU µs per Patient × ${FANOUT} (broker) or per message (readers), medians [min–max] of ${rounds} rounds\n\n`,
  );
  process.stdout.write('| operation | µs |\n|---|---:|\n');
  for (const [name, xs] of results) {
    const f = (x: number) => x.toFixed(1);
    process.stdout.write(`| ${name} | ${f(median(xs))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}] |\n`);
  }
}

await main(process.argv.slice(2));
