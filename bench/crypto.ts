// Crypto micro-benchmark: each primitive the broker and the SDK call per message, under both backends
// (src/crypto/backend.ts) alternated in one process, round after round, and node:crypto's Ed25519 (OpenSSL) for
// reference; with --build, the same functions of another build (its dist/src/crypto, as that build runs them) as a
// third column. Medians of CPU µs per operation (process.cpuUsage), with [min–max] over the rounds.
//   node dist/bench/crypto.js [--rounds 5] [--budget-ms 300] [--build <root of another build>]
import { createPrivateKey, createPublicKey, sign as opensslSign, verify as opensslVerify } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as aeadThis from '../src/crypto/aead.js';
import * as aeadTextThis from '../src/crypto/aead-text.js';
import * as kekThis from '../src/crypto/kek.js';
import * as keysThis from '../src/crypto/keys.js';
import * as signThis from '../src/crypto/sign.js';
import * as randomThis from '../src/crypto/random.js';
import { initCrypto, selectCryptoBackend } from '../src/crypto/sodium.js';

/** The crypto functions measured: this build's, or another build's with the same signatures. */
interface Modules {
  readonly aead: Pick<typeof aeadThis, 'sealBlob' | 'openBlob'>;
  readonly aeadText: Pick<typeof aeadTextThis, 'withLeafCipher'>;
  readonly kek: Pick<typeof kekThis, 'deriveKek'>;
  readonly keys: Pick<typeof keysThis, 'generateServiceKeys'>;
  readonly sign: Pick<typeof signThis, 'signDetached' | 'verifyDetached'>;
  readonly random: Pick<typeof randomThis, 'randomBytes'>;
}

const THIS: Modules = {
  aead: aeadThis,
  aeadText: aeadTextThis,
  kek: kekThis,
  keys: keysThis,
  sign: signThis,
  random: randomThis,
};

async function modulesOf(root: string): Promise<Modules> {
  const m = async <T>(file: string): Promise<T> =>
    (await import(pathToFileURL(join(root, 'dist', 'src', 'crypto', file)).href)) as T;
  await (await m<{ initCrypto(): Promise<void> }>('sodium.js')).initCrypto();
  return {
    aead: await m('aead.js'),
    aeadText: await m('aead-text.js'),
    kek: await m('kek.js'),
    keys: await m('keys.js'),
    sign: await m('sign.js'),
    random: await m('random.js'),
  };
}

type Op = { readonly name: string; readonly run: () => void };

/** CPU µs per call of `f`, over about `budgetMs` of CPU after a quarter of that as warm-up. */
function measure(budgetMs: number, f: () => void): number {
  const spin = (ms: number): { calls: number; us: number } => {
    const t0 = process.cpuUsage();
    let calls = 0;
    let us = 0;
    while (us < ms * 1000) {
      for (let i = 0; i < 50; i++) f();
      calls += 50;
      const d = process.cpuUsage(t0);
      us = d.user + d.system;
    }
    return { calls, us };
  };
  spin(budgetMs / 4);
  const { calls, us } = spin(budgetMs);
  return us / calls;
}

function ops(mods: Modules): Op[] {
  const { sealBlob, openBlob } = mods.aead;
  const { withLeafCipher } = mods.aeadText;
  const { deriveKek } = mods.kek;
  const { generateServiceKeys } = mods.keys;
  const { signDetached, verifyDetached } = mods.sign;
  const { randomBytes } = mods.random;
  const a = generateServiceKeys('a');
  const b = generateServiceKeys('b');
  const envelope = randomBytes(4300); // a sealed Patient's size
  const sig = signDetached(envelope, a.sign.secretKey);
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), a.sign.secretKey.subarray(0, 32)]);
  const priv = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const pub = createPublicKey(priv);
  const key = randomBytes(32);
  const leaves = Array.from({ length: 41 }, (_, i) => `"leaf value ${i} ${'x'.repeat(i % 30)}"`);
  const sealedLeaves = withLeafCipher(key, 'v1|bench|', '|dk1', (c) =>
    leaves.map((l, i) => {
      const mark = c.appendMiddle(`Patient.f${i}`);
      const s = c.seal(l, randomBytes);
      c.truncateMiddle(mark);
      return s;
    }),
  );
  const blob = randomBytes(4300);
  const aad = Buffer.from('quarantine|bench');
  const sealedBlob = sealBlob(key, blob, aad);
  return [
    { name: 'Ed25519 sign, 4.3 KB', run: () => void signDetached(envelope, a.sign.secretKey) },
    { name: 'Ed25519 verify, 4.3 KB', run: () => void verifyDetached(envelope, sig, a.sign.publicKey) },
    {
      name: 'seal 41 leaves (one LeafCipher)',
      run: () =>
        void withLeafCipher(key, 'v1|bench|', '|dk1', (c) => {
          for (let i = 0; i < leaves.length; i++) {
            const mark = c.appendMiddle(`Patient.f${i}`);
            c.seal(leaves[i] as string, randomBytes);
            c.truncateMiddle(mark);
          }
        }),
    },
    {
      name: 'open 41 leaves (one LeafCipher)',
      run: () =>
        void withLeafCipher(key, 'v1|bench|', '|dk1', (c) => {
          for (let i = 0; i < sealedLeaves.length; i++) {
            const mark = c.appendMiddle(`Patient.f${i}`);
            c.open(sealedLeaves[i] as string);
            c.truncateMiddle(mark);
          }
        }),
    },
    { name: 'sealBlob, 4.3 KB', run: () => void sealBlob(key, blob, aad) },
    { name: 'openBlob, 4.3 KB', run: () => void openBlob(key, sealedBlob, aad) },
    { name: 'KEK derivation (X25519 + BLAKE2b)', run: () => void deriveKek(a.enc, b.enc) },
    { name: '(OpenSSL) Ed25519 sign, 4.3 KB', run: () => void opensslSign(null, envelope, priv) },
    { name: '(OpenSSL) Ed25519 verify, 4.3 KB', run: () => void opensslVerify(null, envelope, pub, sig) },
  ];
}

const median = (v: readonly number[]): number => {
  const s = [...v].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function main(argv: readonly string[]): Promise<void> {
  const value = (flag: string, d: number): number => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  const rounds = value('--rounds', 5);
  const budgetMs = value('--budget-ms', 300);
  const i = argv.indexOf('--build');
  const other = i >= 0 ? argv[i + 1] : undefined;
  await initCrypto('native');
  const columns: { name: string; enter: () => Modules }[] = [
    { name: 'native', enter: () => (selectCryptoBackend('native'), THIS) },
    { name: 'wasm', enter: () => (selectCryptoBackend('wasm'), THIS) },
  ];
  if (other !== undefined) {
    const mods = await modulesOf(other);
    columns.push({ name: 'that build', enter: () => mods });
  }
  const figures = new Map<string, number[][]>();
  for (let r = 0; r < rounds; r++) {
    // Rotate which column goes first, so a drift of the machine's load falls on every column alike.
    for (let k = 0; k < columns.length; k++) {
      const c = (k + r) % columns.length;
      const mods = (columns[c] as (typeof columns)[number]).enter();
      for (const op of ops(mods)) {
        const f = figures.get(op.name) ?? columns.map(() => []);
        (f[c] as number[]).push(measure(budgetMs, op.run));
        figures.set(op.name, f);
      }
    }
    process.stderr.write(`round ${r + 1}/${rounds}\n`);
  }
  const fmt = (v: readonly number[]): string =>
    `${median(v).toFixed(1)} [${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}]`;
  const lines = [
    `CPU µs per operation, medians [min–max] of ${rounds} alternated rounds${other === undefined ? '' : `; that build: ${other}`}`,
    '',
    `| operation | ${columns.map((c) => c.name).join(' | ')} | wasm / native |`,
    `|---|${columns.map(() => '---:|').join('')}---:|`,
  ];
  // The (OpenSSL) rows do not depend on the backend: their columns are the same code measured again.
  for (const [name, f] of figures) {
    const [n, w] = f as [number[], number[]];
    lines.push(`| ${name} | ${f.map(fmt).join(' | ')} | ${(median(w) / median(n)).toFixed(2)} |`);
  }
  selectCryptoBackend('native');
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`bench crypto: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
