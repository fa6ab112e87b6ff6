// `npm run bench`: the broker over the real path against same-run baselines (docs/performance.md).
//   node dist/bench/main.js [--quick] [--out <dir>] [--only <run-name-substring>[,…]] [--cpu-prof <dir>]
//                           [--broker-flags '<node flags for the broker processes>'] [--repeat <N>]
//                           [--rates 50,100,200] [--broker-build <root of another build>] [--no-tls]
// Every run connects over mTLS as users run it (bench/tls.ts); --no-tls runs them in plaintext instead.
// PHI_BROKER_CRYPTO (native|wasm) chooses the crypto backend of every process of the run (docs/configuration.md).
// --rates runs Patient × 3 at those fixed offered rates (below saturation: what a message costs when it is not
// sharing its writes, wake-ups and caches with others; 0: every process idle), and only those unless --only
// selects more.
// --broker-build forks the broker processes from another build (before/after under one runner; alternate the two).
// The gateway-inbound scenario (bench/gateway-inbound.ts) runs once after the rounds, with every full or quick run and
// with `--only gateway-inbound`; --rates alone leaves it out.
// Writes <out>/<date>-<machine>.json (default bench/results/; -2, -3 … for later runs that day) and prints a markdown summary.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBrokerSecrets } from '../src/runtime/broker-secrets.js';
import { loadCatalog } from '../src/runtime/catalog-dir.js';
import { BROKER_ID } from '../src/wire/ids.js';
import { connectNats } from '../src/runtime/data-dir.js';
import { ensureDevKeys, readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { cryptoBackend, initCrypto } from '../src/crypto/sodium.js';
import { issueBenchCertificates } from './tls.js';
import { startNatsServer } from '../src/nats/server.js';
import { compare, scaleOut, type Comparison, type ScaleOut } from './compare.js';
import { summarize, type Round } from './repeat.js';
import { markdown } from './report.js';
import { SIZES, type SizeName } from './resources.js';
import { runOne, type Env, type RunResult, type RunSpec } from './runs.js';
import { profileStages, type StageProfile } from './stages.js';
import { runGatewayInbound, type GatewayInboundResult } from './gateway-inbound.js';

/** The `--only` name of the partner gateway's inbound scenario. */
export const GATEWAY_INBOUND = 'gateway-inbound';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Offered rate of the full run's light-load point (msgs/s): well below this 2-core machine's saturation. */
const LIGHT_LOAD_RATE = 50;

export interface BenchOptions {
  readonly quick: boolean;
  readonly out: string;
  readonly only?: string;
  readonly cpuProfDir?: string;
  readonly brokerFlags?: readonly string[];
  /** Rounds of every selected run and stage profile, round-robin (default 1); the tables show medians. */
  readonly repeat?: number;
  /** Extra open-loop runs at these offered rates (msgs/s), Patient × 3, one broker. */
  readonly rates?: readonly number[];
  /** Another build's root: its dist/bench/broker-process.js runs the broker. */
  readonly brokerRoot?: string;
  /** Plaintext connections instead of mTLS (`--no-tls`). */
  readonly noTls?: boolean;
}

export interface BenchResults {
  readonly date: string;
  readonly quick: boolean;
  /** How many rounds ran (`--repeat`). */
  readonly repeat: number;
  /** Whether every connection was mTLS (false: `--no-tls`). */
  readonly tls: boolean;
  /** The crypto backend every process of the run used, and its libsodium. */
  readonly crypto: { readonly backend: string; readonly libsodium: string };
  readonly machine: {
    readonly hostname: string;
    readonly nproc: number;
    readonly cpuModel: string;
    readonly node: string;
    readonly loadavgStart: readonly number[];
    readonly loadavgEnd: readonly number[];
  };
  /** Each figure's median over the rounds (bench/repeat.ts `summarize`); with one round, that round's figures. */
  readonly runs: readonly RunResult[];
  readonly stages: Readonly<Record<string, StageProfile>>;
  readonly comparisons: readonly Comparison[];
  /** Every round's own figures, in the order they ran. */
  readonly rounds: readonly Round[];
  /**
   * Two brokers against one at the same fixed offered rate (open loop): CPU µs per message of each and p50/p99,
   * from the summarized runs (bench/compare.ts scaleOut).
   */
  readonly scaleOut: readonly ScaleOut[];
  /** Inbound single-resource creates through the partner gateway against the SDK (absent when not selected). */
  readonly gatewayInbound?: GatewayInboundResult;
  readonly file: string;
}

export type { Comparison } from './compare.js';

function machine(): { cpuModel: string; nproc: number } {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    // cpus().length
  }
  return { cpuModel: model.trim(), nproc };
}

function plan(o: BenchOptions): RunSpec[] {
  const runs: RunSpec[] = [];
  const q = o.quick;
  const warmupMs = q ? 750 : 5_000;
  const measureMs = q ? 2_000 : 10_000;
  // An upper bound, not a pause: a run stops draining as soon as every receipt and delivery is in. The quick
  // run's bound is as long as the full run's so that a loaded machine (the test suite's) still gets its
  // latency samples; a quiet one never waits it out.
  const drainMs = 10_000;
  const sat = (size: SizeName) => ({ kind: 'closed' as const, concurrency: size === 'large' ? 16 : 256 });
  const add = (
    kind: RunSpec['kind'],
    size: SizeName,
    fanout: number,
    brokers: number,
    shape: RunSpec['shape'],
    extra: Partial<RunSpec> = {},
  ): void => {
    const load = shape.kind === 'open' ? `${shape.rate}ps` : 'sat';
    runs.push({
      name: `${kind}-${size}-f${fanout}${kind === 'broker' ? `-b${brokers}` : ''}-${load}`,
      kind,
      size,
      fanout,
      brokers,
      shape,
      warmupMs,
      measureMs,
      drainMs,
      ...extra,
    });
  };
  const combos: [SizeName, number][] = q
    ? [['medium', 3]]
    : [
        ['medium', 3],
        ['medium', 1],
        ['medium', 6],
        ['small', 3],
        ['large', 3],
      ];
  for (const [size, fanout] of combos) {
    // --quick has no separate soak: its one saturation run samples RSS instead.
    add('broker', size, fanout, 1, sat(size), q ? { rssEveryMs: 1_000 } : {});
    add('passthrough', size, fanout, 1, sat(size));
    add('core', size, fanout, 1, sat(size));
  }
  if (!q) add('broker', 'medium', 3, 2, sat('medium'));
  for (const rate of q ? [500] : [500, 1000]) {
    add('broker', 'medium', 3, 1, { kind: 'open', rate });
    if (!q) {
      add('passthrough', 'medium', 3, 1, { kind: 'open', rate });
      add('core', 'medium', 3, 1, { kind: 'open', rate });
    }
  }
  if (!q) {
    // Latency at half the load this machine sustained (on a machine that does not reach 1,000/s the fixed
    // rates above measure overload), and the soak: 60 s at half of it too (at most 500/s), RSS every 5 s after
    // a 10 s warm-up. Not more: the closed-loop saturation figure overstates what an open loop sustains (at
    // 70 % of it the queue, latency and RSS still swung with the load), and a soak at the edge of saturation
    // measures the backlog, not whether the broker's memory grows.
    const from = (fraction: number, max: number) => ({ run: 'broker-medium-f3-b1-sat', fraction, max });
    runs.push({
      name: 'broker-medium-f3-b1-halfsat',
      kind: 'broker',
      size: 'medium',
      fanout: 3,
      brokers: 1,
      shape: { kind: 'open', rate: 500 },
      warmupMs,
      measureMs,
      drainMs,
      rateFrom: from(0.5, 1_000),
    });
    // Scale-out where the load generators leave CPU for a second broker (the saturation pair above gives the
    // publisher and subscribers the cores a second broker would use): the same offered rate, half of this round's
    // one-broker saturation, to two brokers; compared with the run above as CPU µs per message (bench/compare.ts).
    runs.push({
      name: 'broker-medium-f3-b2-halfsat',
      kind: 'broker',
      size: 'medium',
      fanout: 3,
      brokers: 2,
      shape: { kind: 'open', rate: 500 },
      warmupMs,
      measureMs,
      drainMs,
      rateFrom: from(0.5, 1_000),
    });
    runs.push({
      name: 'soak-medium-f3-b1',
      kind: 'broker',
      size: 'medium',
      fanout: 3,
      brokers: 1,
      shape: { kind: 'open', rate: 500 },
      warmupMs: 10_000,
      measureMs: 60_000,
      drainMs,
      rssEveryMs: 5_000,
      rateFrom: from(0.5, 500),
    });
  }
  // Below saturation (issue 6): warmed up at 100/s (then settled at the rate), as a long-running service's JIT
  // is — at 10/s a plain warm-up leaves V8 measuring its own optimisation —, and a longer window for enough
  // latency samples.
  const fixedRun = (rate: number): RunSpec => ({
    name: `broker-medium-f3-b1-${rate}ps`,
    kind: 'broker',
    size: 'medium',
    fanout: 3,
    brokers: 1,
    shape: { kind: 'open', rate, warmRate: Math.max(rate, 100) },
    warmupMs: q ? warmupMs : 12_000,
    measureMs: q ? measureMs : 15_000,
    drainMs,
  });
  // The full run always has one light-load point: the latency a message sees when the machine is not the queue.
  if (!q) runs.push(fixedRun(LIGHT_LOAD_RATE));
  const fixed = (o.rates ?? []).map(fixedRun);
  for (const f of fixed) if (!runs.some((r) => r.name === f.name)) runs.push(f);
  const matching =
    o.only === undefined
      ? fixed.length > 0
        ? runs.filter((r) => fixed.some((f) => f.name === r.name))
        : runs
      : runs.filter((r) => (o.only as string).split(',').some((part) => r.name.includes(part)));
  // A run whose rate derives from another (the half-load run, the soak) brings that run along, first.
  const bases = runs.filter((r) => !matching.includes(r) && matching.some((m) => m.rateFrom?.run === r.name));
  const selected = [...bases, ...matching];
  return selected.map((r) => ({
    ...r,
    ...(r.kind !== 'broker'
      ? {}
      : {
          ...(o.brokerRoot === undefined ? {} : { brokerRoot: o.brokerRoot }),
          ...(o.cpuProfDir === undefined ? {} : { cpuProfDir: o.cpuProfDir }),
          ...(o.brokerFlags === undefined ? {} : { brokerFlags: o.brokerFlags }),
        }),
  }));
}

export async function runBench(o: BenchOptions, log: (line: string) => void): Promise<BenchResults> {
  await initCrypto();
  const loadavgStart = loadavg();
  const scratch = mkdtempSync(join(tmpdir(), 'phi-broker-bench-'));
  try {
    const keysDir = join(scratch, 'keys');
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    const subjectsDir = (fanout: number): string => join(ROOT, 'bench', 'catalog', `fanout-${fanout}`);
    const profilesDir = join(ROOT, 'fhir-profiles');
    const catalogs = new Map(
      [1, 3, 6].map((f) => [f, loadCatalog({ subjects: subjectsDir(f), profiles: profilesDir })]),
    );
    const services = new Set<string>([BROKER_ID]);
    for (const c of catalogs.values()) for (const s of c.services.keys()) services.add(s);
    ensureDevKeys(keysDir, [...services]);
    const secrets = ensureBrokerSecrets(keysDir);
    const tlsDir =
      o.noTls === true
        ? undefined
        : await issueBenchCertificates(
            join(scratch, 'tls'),
            [...services].filter((s) => s !== BROKER_ID),
          );
    const env: Env = {
      ...(tlsDir === undefined ? {} : { tlsDir }),
      catalog: (f) => {
        const c = catalogs.get(f);
        if (c === undefined) throw new Error(`no bench catalog for fan-out ${f}`);
        return c;
      },
      dir: scratch,
      keysDir,
      profilesDir,
      subjectsDir,
      subscribers: (f) => Array.from({ length: f }, (_, i) => `sub${i + 1}`),
    };

    const specs = plan(o);
    // Fixed-rate runs alone (--rates) need no stage profile: what they report is per process, not against the floor.
    const combos = new Set(
      specs
        .filter(
          (s) =>
            s.kind === 'broker' &&
            !(o.rates !== undefined && s.shape.kind === 'open' && o.rates.includes(s.shape.rate)),
        )
        .map((s) => `${s.size}-f${s.fanout}`),
    );
    const repeat = o.repeat ?? 1;
    // One round: every selected run once, then the stage profiles. Rounds follow one another (run1, run2, …,
    // run1, run2, …) rather than each run repeated in place, so that a slow drift of a shared machine's load
    // falls on every run alike; each round has its own scratch directory and (--cpu-prof) profile directory.
    const round = async (k: number): Promise<Round> => {
      const tag = repeat === 1 ? '' : `[${k}/${repeat}] `;
      const dir = repeat === 1 ? scratch : join(scratch, `round-${k}`);
      const profDir = (d: string): string => (repeat === 1 ? d : join(d, `round-${k}`));
      const runs: RunResult[] = [];
      for (const planned of specs) {
        const base = planned.rateFrom === undefined ? undefined : runs.find((x) => x.name === planned.rateFrom?.run);
        const spec: RunSpec = {
          ...(planned.rateFrom === undefined || base === undefined
            ? planned
            : {
                ...planned,
                shape: {
                  kind: 'open',
                  rate: Math.max(
                    10,
                    Math.min(planned.rateFrom.max, Math.round(base.acceptedPerSec * planned.rateFrom.fraction)),
                  ),
                },
              }),
          ...(planned.cpuProfDir === undefined ? {} : { cpuProfDir: profDir(planned.cpuProfDir) }),
        };
        if (spec.cpuProfDir !== undefined) mkdirSync(spec.cpuProfDir, { recursive: true });
        log(`${tag}run ${spec.name}${spec.shape.kind === 'open' ? ` at ${spec.shape.rate}/s` : ''} …`);
        const r = await runOne({ ...env, dir }, spec);
        runs.push(r);
        log(
          `  ${Math.round(r.acceptedPerSec)} msgs/s, ${Math.round(r.completedPerSec)} deliveries/s completed, p99 ${r.latencyMs.p99.toFixed(1)} ms`,
        );
      }

      const stages: Record<string, StageProfile> = {};
      for (const key of combos) {
        const [size, f] = key.split('-f') as [SizeName, string];
        log(`${tag}stage profile ${key} …`);
        const nats = await startNatsServer({ dir: join(dir, `stages-${key}`), maxPayload: 4 * 1024 * 1024 });
        const nc = await connectNats(nats.url, 'bench stages');
        try {
          const catalog = catalogs.get(Number(f));
          if (catalog === undefined || SIZES[size] === undefined) throw new Error(`no catalog for ${key}`);
          stages[key] = await profileStages({
            catalog,
            keys: (s) => readServiceKeys(keysDir, s),
            peers: readJwks(keysDir),
            secrets,
            size,
            nc,
            budgetMs: o.quick ? 25 : 400,
          });
        } catch (err) {
          // The stage's own error: cleaning up after it (a drain with its requests still open) must not replace
          // it with a NATS TIMEOUT.
          await nc.close().catch(() => undefined);
          await nats.stop().catch(() => undefined);
          throw new Error(`stage profile ${key}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        await nc.drain();
        await nats.stop();
      }
      // The ratios of this round's own figures: the summary takes their median, never a ratio of medians.
      return { runs, stages, comparisons: compare(runs, stages) };
    };
    const rounds: Round[] = [];
    for (let k = 1; k <= repeat; k++) rounds.push(await round(k));
    const summary = summarize(rounds);
    const gatewaySelected =
      o.only === undefined
        ? o.rates === undefined
        : o.only.split(',').some((part) => part !== '' && GATEWAY_INBOUND.includes(part));
    const gatewayInbound = gatewaySelected
      ? await runGatewayInbound({ dir: join(scratch, GATEWAY_INBOUND), root: ROOT, quick: o.quick }, log)
      : undefined;

    const date = new Date().toISOString().slice(0, 10);
    const m = machine();
    const host = hostname().replace(/[^A-Za-z0-9._-]/g, '_');
    mkdirSync(o.out, { recursive: true });
    // A second run on the same day gets -2, -3 …: an earlier day's results stay where the docs cite them.
    const base = `${date}-${host}${o.quick ? '-quick' : ''}`;
    let file = join(o.out, `${base}.json`);
    for (let k = 2; existsSync(file); k++) file = join(o.out, `${base}-${k}.json`);
    const results: BenchResults = {
      date: new Date().toISOString(),
      quick: o.quick,
      repeat,
      tls: tlsDir !== undefined,
      crypto: { backend: cryptoBackend().name, libsodium: cryptoBackend().libsodium },
      machine: {
        hostname: host,
        nproc: m.nproc,
        cpuModel: m.cpuModel,
        node: process.version,
        loadavgStart,
        loadavgEnd: loadavg(),
      },
      runs: summary.runs,
      stages: summary.stages,
      comparisons: summary.comparisons,
      scaleOut: scaleOut(summary.runs),
      rounds,
      ...(gatewayInbound === undefined ? {} : { gatewayInbound }),
      file,
    };
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    return results;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function parseArgs(argv: readonly string[]): BenchOptions {
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const only = value('--only');
  const cpuProfDir = value('--cpu-prof');
  const brokerFlags = value('--broker-flags')
    ?.split(' ')
    .filter((f) => f !== '');
  const repeat = value('--repeat');
  if (repeat !== undefined && !/^[1-9][0-9]*$/.test(repeat))
    throw new TypeError(`--repeat takes a positive whole number of rounds, not ${JSON.stringify(repeat)}`);
  const rates = value('--rates')?.split(',').map(Number);
  if (rates !== undefined && !rates.every((r) => Number.isInteger(r) && r >= 0))
    throw new TypeError('--rates: integers ≥ 0, comma-separated (e.g. 0,50,100,200; 0: idle)');
  const brokerRoot = value('--broker-build');
  return {
    quick: argv.includes('--quick'),
    out: value('--out') ?? join(ROOT, 'bench', 'results'),
    ...(only === undefined ? {} : { only }),
    ...(cpuProfDir === undefined ? {} : { cpuProfDir }),
    ...(brokerFlags === undefined ? {} : { brokerFlags }),
    ...(repeat === undefined ? {} : { repeat: Number(repeat) }),
    ...(rates === undefined ? {} : { rates }),
    ...(brokerRoot === undefined ? {} : { brokerRoot }),
    ...(argv.includes('--no-tls') ? { noTls: true } : {}),
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const options = parseArgs(process.argv.slice(2));
  runBench(options, (line) => process.stderr.write(`${line}\n`))
    .then((results) => {
      process.stdout.write(markdown(results));
      process.stdout.write(`\nresults: ${results.file}\n`);
    })
    .catch((err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    });
}
