// One measured run over the real path, on its own fresh nats-server (own port, own store dir), over mTLS as
// users run it (bench/tls.ts) unless --no-tls:
//   broker:      sdk-pub → PHI_INGEST → broker process(es) → PHI_DELIVER → sdk-sub (verify + decrypt)
//   passthrough: raw-pub → BENCH_IN → passthrough process → BENCH_OUT → raw-sub   (baseline 1)
//   core:        core-pub → core NATS subject → core-sub                            (baseline 3)
// Throughput counts what completed inside the measured window (after warm-up); latency is publish start →
// the subscriber holding the verified, decrypted copy, for messages published inside the window.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { NatsConnection } from 'nats';
import { freePort } from '../src/nats/server.js';
import type { Catalog } from '../src/catalog/types.js';
import { parseConfig } from '../src/config/config.js';
import { provisionStreams } from '../src/runtime/provision.js';
import { ADMIN_IDENTITY } from '../src/tls/identity.js';
import { STREAMS } from '../src/wire/names.js';
import { BENCH_IDENTITY, connectBench, startBenchNats } from './tls.js';
import { Child, type Message } from './child.js';
import type { PubResult, SubResult } from './client-process.js';
import { ensureRawStreams } from './raw.js';
import { now, type LoadShape } from './load.js';
import { percentiles, type Latency } from './latency.js';
import { latencySplit, type DeliveryClocks, type LatencySplit } from './latency-split.js';
import { mergeSnapshots, stagesBetween, type StageFigures, type StageSnapshot } from './stage-histogram.js';
import { cpuPercent, machinePercent, machineSample, sample, switchesBetween, type ProcSample } from './proc.js';
import type { SizeName } from './resources.js';
import { sampleStreams, streamWrites, type StreamSample, type StreamWrites } from './writes.js';

export type RunKind = 'broker' | 'passthrough' | 'core';

export interface RunSpec {
  readonly name: string;
  readonly kind: RunKind;
  readonly size: SizeName;
  readonly fanout: number;
  readonly brokers: number;
  readonly shape: LoadShape;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Sample the broker processes' RSS every this many ms (the soak). */
  readonly rssEveryMs?: number;
  /** How long to wait after the load for subscribers to catch up (what is still missing then is reported). */
  readonly drainMs: number;
  /** Offer a fraction of an earlier run's throughput instead of `shape` (the soak, the half-load latency run). */
  readonly rateFrom?: { readonly run: string; readonly fraction: number; readonly max: number };
  /** Write a V8 CPU profile of each broker process into this directory. */
  readonly cpuProfDir?: string;
  /** Node/V8 flags for the broker processes (`--broker-flags`, e.g. heap sizes to compare). */
  readonly brokerFlags?: readonly string[];
  /**
   * Another build's root (`--broker-build`, a checkout with `npm run build` done): the broker processes are
   * forked from its dist/bench, beside this build's publisher and subscribers, so two brokers run under the
   * same load, runner and figures (before/after; alternate the two).
   */
  readonly brokerRoot?: string;
}

export interface Env {
  /** Scratch root (nats stores, logs). */
  readonly dir: string;
  readonly keysDir: string;
  readonly profilesDir: string;
  readonly subjectsDir: (fanout: number) => string;
  readonly subscribers: (fanout: number) => string[];
  readonly catalog: (fanout: number) => Catalog;
  /** The mTLS certificates (bench/tls.ts); undefined: plaintext (--no-tls). */
  readonly tlsDir?: string;
}

export interface RunResult {
  readonly name: string;
  readonly kind: RunKind;
  readonly size: SizeName;
  readonly fanout: number;
  readonly brokers: number;
  readonly shape: LoadShape;
  readonly measureSeconds: number;
  /** Messages the broker (or passthrough) finished per second; for core NATS, messages flushed per second. */
  readonly acceptedPerSec: number;
  /** Deliveries published by the broker(s) per second (passthrough: copies; core: received by subscribers). */
  readonly deliveriesPerSec: number;
  /** Deliveries the subscribers completed (verified and decrypted) per second. */
  readonly completedPerSec: number;
  readonly latencyMs: Latency;
  /** Broker runs: where each delivery's latency went (bench/latency-split.ts). */
  readonly latencySplit?: LatencySplit | undefined;
  /** Broker runs: the brokers' per-stage times over the window, ms (bench/stage-histogram.ts). */
  readonly stages?: Readonly<Record<string, StageFigures>> | undefined;
  /** Deliveries of window messages not received before the run ended. */
  readonly missing: number;
  /** The processing process(es): broker(s) or passthrough; undefined for core NATS. */
  readonly worker?: {
    readonly cpuPercent: number;
    readonly cpuUsPerMsg: number;
    readonly peakRssMb: number;
    readonly readySeconds: readonly number[];
    /**
     * Each broker process's CPU µs over every message the run accepted (they add up to cpuUsPerMsg) and its own
     * share of those messages: with two brokers, how the work split between them.
     */
    readonly perBroker?: readonly { readonly cpuUsPerMsg: number; readonly acceptedShare: number }[];
    readonly rssTimeline?: readonly { readonly s: number; readonly rssMb: number }[];
    /** With an RSS timeline: the broker processes' RSS when the measured window starts and when it ends. */
    readonly rssWindowMb?: { readonly start: number; readonly end: number };
    /** With an RSS timeline: their live JavaScript heap (after a full GC) at the same two moments. */
    readonly liveHeapWindowMb?: { readonly start: number; readonly end: number };
  };
  /**
   * Where the machine's CPU went over the measured window, % of one core (this machine's cores fully busy = nproc ×
   * 100 %): every core's busy time (/proc/stat) and time stolen by the hypervisor, and each process of the run —
   * nats-server, the publisher, the subscribers and the worker(s) — from /proc/<pid>/stat. What the machine has left
   * when one broker saturates is what a second broker process could use.
   */
  readonly cpu: {
    readonly machine: number;
    readonly steal: number;
    readonly natsServer: number;
    readonly publisher: number;
    readonly subscribers: number;
    readonly workers: number;
  };
  /**
   * The same processes per message accepted in the window: CPU µs and context switches (every thread's, so
   * wake-ups: below saturation a message's writes and round trips are no longer shared with others).
   */
  readonly perMessage?: Readonly<
    Record<
      'natsServer' | 'publisher' | 'subscribers' | 'workers',
      {
        readonly cpuUs: number;
        readonly switches: number;
        /** Write and read system calls (every thread's): the client writes and wake-ups a message costs. */
        readonly syscallWrites: number;
        readonly syscallReads: number;
      }
    >
  >;
  /**
   * Broker runs: PHI_AUDIT's stored bytes grown over the measured window ÷ messages accepted in it (from `streams`):
   * what the audit trail keeps per message for its retention.
   */
  readonly auditBytesPerMsg?: number;
  /** Broker runs: per message accepted, what each JetStream stream (and KV bucket) stored over the window (bench/writes.ts). */
  readonly streams?: Readonly<Record<string, StreamWrites>>;
  /** Publishes rejected or refused (never expected: the bench sends only valid resources). */
  readonly failed: number;
  /** Publishes without a receipt (or JetStream ack) when the run ended: the system was behind. */
  readonly unfinished: number;
  /** Open loop: publishes not offered because 2,000 were already in flight (overload). */
  readonly shed: number;
}

/** The broker process's script: this build's, or `--broker-build`'s (the IPC protocol is the same). */
function brokerScript(spec: RunSpec): string {
  return spec.brokerRoot === undefined
    ? './broker-process.js'
    : pathToFileURL(join(spec.brokerRoot, 'dist', 'bench', 'broker-process.js')).href;
}

/** CPU % of one core of one process between two samples; NaN when it was not sampled at both. */
function between(a: ProcSample | undefined, b: ProcSample | undefined): number {
  return a === undefined || b === undefined ? NaN : cpuPercent(a, b);
}

/** The summed RSS of the sampled processes, MB to one decimal. */
const rssOf = (samples: readonly ProcSample[]): number =>
  Math.round(samples.reduce((a, x) => a + x.rssMb, 0) * 10) / 10;

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

interface Stats extends Message {
  readonly accepted: number;
  readonly deliveries: number;
  /** Absent from a broker build before the stage snapshot (--broker-build). */
  readonly stages?: StageSnapshot;
}

/** The broker processes' summed live heap in MB (each collects fully first), to one decimal. */
async function liveHeap(workers: readonly Child[]): Promise<number> {
  const all = await Promise.all(workers.map((w) => w.request<Message>({ cmd: 'heap' }, 'heap')));
  return Math.round(all.reduce((a, h) => a + Number(h['liveHeapMb']), 0) * 10) / 10;
}

async function sumStats(
  workers: readonly Child[],
): Promise<{ accepted: number; deliveries: number; each: readonly number[]; stages: StageSnapshot }> {
  const all = await Promise.all(workers.map((w) => w.request<Stats>({ cmd: 'stats' }, 'stats')));
  return {
    accepted: all.reduce((a, s) => a + s.accepted, 0),
    deliveries: all.reduce((a, s) => a + s.deliveries, 0),
    each: all.map((s) => s.accepted),
    stages: mergeSnapshots(all.map((s) => s.stages ?? {})),
  };
}

export async function runOne(env: Env, spec: RunSpec): Promise<RunResult> {
  const dir = join(env.dir, spec.name);
  mkdirSync(dir, { recursive: true });
  const tlsDir = env.tlsDir;
  // With --cpu-prof, nats-server is profiled too (Go pprof over the measured window: bench/pprof-summary.ts).
  const natsProfPort = spec.cpuProfDir === undefined ? undefined : await freePort();
  const nats = await startBenchNats(join(dir, 'nats'), env.catalog(spec.fanout), tlsDir, 4 * 1024 * 1024, natsProfPort);
  const subscribers = env.subscribers(spec.fanout);
  const children: Child[] = [];
  // The admin's connection reads the streams' info at the window's edges (broker runs).
  let admin: NatsConnection | undefined;
  try {
    const workers: Child[] = [];
    if (spec.kind === 'broker') {
      admin = await connectBench(nats.url, 'bench admin', ADMIN_IDENTITY, tlsDir);
      if (tlsDir !== undefined) {
        // As `up` does: the admin provisions streams, buckets and consumers; the broker identity may not.
        const config = parseConfig({
          dataDir: join(dir, 'broker0'),
          natsUrl: nats.url,
          subjectsDir: env.subjectsDir(spec.fanout),
          profilesDir: env.profilesDir,
        });
        await provisionStreams(admin, config, env.catalog(spec.fanout));
      }
      for (let b = 0; b < spec.brokers; b++) {
        // --expose-gc lets the soak ask for the live heap (two full collections per run, at the window's edges).
        const execArgv = [
          ...(spec.rssEveryMs === undefined ? [] : ['--expose-gc']),
          ...(spec.brokerFlags ?? []),
          ...(spec.cpuProfDir === undefined
            ? []
            : [
                '--cpu-prof',
                `--cpu-prof-dir=${spec.cpuProfDir}`,
                `--cpu-prof-name=${spec.name}-broker${b}.cpuprofile`,
              ]),
        ];
        const args = {
          natsUrl: nats.url,
          subjectsDir: env.subjectsDir(spec.fanout),
          profilesDir: env.profilesDir,
          keysDir: env.keysDir,
          dataDir: join(dir, `broker${b}`),
          logFile: join(dir, `broker${b}.log`),
          ...(tlsDir === undefined ? {} : { tlsDir }),
        };
        workers.push(new Child(`broker${b}`, brokerScript(spec), args, execArgv));
      }
    } else if (spec.kind === 'passthrough') {
      const nc = await connectBench(nats.url, 'bench setup', BENCH_IDENTITY, tlsDir);
      await ensureRawStreams(nc, subscribers);
      await nc.drain();
      workers.push(
        new Child('passthrough', './passthrough-process.js', {
          natsUrl: nats.url,
          subscribers,
          concurrency: 64,
          ...(tlsDir === undefined ? {} : { tlsDir }),
        }),
      );
    }
    children.push(...workers);
    // Brokers start one after the other's streams exist (ensureBrokerInfrastructure is idempotent, but two at
    // once race on creating the same stream).
    const ready: number[] = [];
    for (const w of workers) ready.push(Number((await w.next<Message>('ready', 60_000))['seconds']));
    const role = spec.kind === 'broker' ? 'sdk' : spec.kind === 'passthrough' ? 'raw' : 'core';
    const common = {
      natsUrl: nats.url,
      keysDir: env.keysDir,
      size: spec.size,
      subscribers,
      ...(tlsDir === undefined ? {} : { tlsDir }),
    };
    // With --cpu-prof the SDK clients are profiled too: what the publisher and subscribers cost is half the
    // machine at saturation (the *where the CPU went* table).
    const clientProf = (who: string): string[] =>
      spec.cpuProfDir === undefined
        ? []
        : ['--cpu-prof', `--cpu-prof-dir=${spec.cpuProfDir}`, `--cpu-prof-name=${spec.name}-${who}.cpuprofile`];
    const sub = new Child('sub', './client-process.js', { ...common, role: `${role}-sub` }, clientProf('sub'));
    const pub = new Child('pub', './client-process.js', { ...common, role: `${role}-pub` }, clientProf('pub'));
    children.push(sub, pub);
    await Promise.all([sub.next('spawned'), pub.next('spawned')]);
    const window = { start: now() + 1_000, warmupMs: spec.warmupMs, measureMs: spec.measureMs };
    const subReady = sub.next('ready', 60_000);
    const run = { cmd: 'run', shape: spec.shape, window, graceMs: spec.drainMs };
    sub.send(run);
    await subReady;
    const pubResult = pub.next<PubResult & Message>('result', spec.warmupMs + spec.measureMs + spec.drainMs + 120_000);
    pub.send(run);

    // Worker CPU and stats at the edges of the measured window; RSS along the way (the soak's timeline).
    const rssTimeline: { s: number; rssMb: number }[] = [];
    let rssTimer: NodeJS.Timeout | undefined;
    if (spec.rssEveryMs !== undefined) {
      const every = spec.rssEveryMs;
      const tick = (): void => {
        const rss = workers.map((w) => sample(w.pid)?.rssMb ?? 0).reduce((a, b) => a + b, 0);
        rssTimeline.push({ s: Math.round((now() - window.start) / 100) / 10, rssMb: Math.round(rss * 10) / 10 });
      };
      rssTimer = setInterval(tick, every);
    }
    await delay(window.start + window.warmupMs - now());
    const natsProfile =
      natsProfPort === undefined || spec.cpuProfDir === undefined
        ? undefined
        : natsCpuProfile(natsProfPort, spec.measureMs, join(spec.cpuProfDir, `${spec.name}-nats.pprof`));
    const s0 = workers.map((w) => sample(w.pid)).filter((s): s is ProcSample => s !== undefined);
    const others0 = [nats.pid, pub.pid, sub.pid].map(sample);
    const m0 = machineSample();
    const st0 = await sumStats(workers);
    // The streams after the broker's counters, so that listing them never delays the window's other figures; a
    // listing that ends after the window has no figure.
    let streams0: Record<string, StreamSample> | undefined =
      admin === undefined ? undefined : await sampleStreams(admin);
    if (now() > window.start + window.warmupMs + window.measureMs) streams0 = undefined;
    const heap0 = spec.rssEveryMs === undefined ? NaN : await liveHeap(workers);
    await delay(window.start + window.warmupMs + window.measureMs - now());
    await natsProfile;
    const s1 = workers.map((w) => sample(w.pid)).filter((s): s is ProcSample => s !== undefined);
    const others1 = [nats.pid, pub.pid, sub.pid].map(sample);
    const m1 = machineSample();
    const st1 = await sumStats(workers);
    const streams1 = admin === undefined || streams0 === undefined ? undefined : await sampleStreams(admin);
    const heap1 = spec.rssEveryMs === undefined ? NaN : await liveHeap(workers);
    if (rssTimer !== undefined) clearInterval(rssTimer);
    const published = await pubResult;

    // Let the subscribers catch up with what was processed (bounded: at saturation they may lag far behind).
    const expected = spec.kind === 'core' ? 0 : (await sumStats(workers)).deliveries;
    const until = now() + (spec.kind === 'core' ? 500 : spec.drainMs);
    while (now() < until) {
      const c = await sub.request<Message>({ cmd: 'count' }, 'count');
      if (spec.kind !== 'core' && Number(c['total']) >= expected) break;
      await delay(200);
    }
    const subResult = await sub.request<SubResult & Message>({ cmd: 'stop' }, 'result');
    const peakRssMb = Math.max(0, ...workers.map((w) => sample(w.pid)?.peakRssMb ?? 0));
    for (const w of workers) {
      const stopped = await w.request<Message>({ cmd: 'stop' }, 'stopped', 60_000);
      if (process.env['PHI_BENCH_DEBUG_REGISTRY'] !== undefined)
        process.stderr.write(`${spec.name} registry ${JSON.stringify(stopped['registry'])}\n`);
    }
    await Promise.all(children.map((c) => c.exited()));

    const seconds = spec.measureMs / 1000;
    let latencies: number[];
    const clocks: DeliveryClocks[] = [];
    let missing = 0;
    if (spec.kind === 'broker') {
      latencies = [];
      const got = new Map<string, number>();
      for (const [id, t, publishedAt, sealedAt] of subResult.received) {
        const t0 = published.starts[id];
        if (t0 !== undefined) {
          latencies.push(t - t0);
          clocks.push({ start: t0, published: publishedAt, sealed: sealedAt, received: t });
          got.set(id, (got.get(id) ?? 0) + 1);
        }
      }
      missing = Object.keys(published.starts).length * spec.fanout - latencies.length;
    } else {
      latencies = [...subResult.latencies];
      missing = spec.kind === 'passthrough' ? published.sent * spec.fanout - latencies.length : 0;
    }
    const accepted = spec.kind === 'core' ? published.completed : st1.accepted - st0.accepted;
    const cpuSeconds = s1.reduce((a, s) => a + s.cpuSeconds, 0) - s0.reduce((a, s) => a + s.cpuSeconds, 0);
    const per = (
      a: readonly (ProcSample | undefined)[],
      b: readonly (ProcSample | undefined)[],
    ): { cpuUs: number; switches: number; syscallWrites: number; syscallReads: number } => {
      let cpu = 0;
      let switches = 0;
      let writes = 0;
      let reads = 0;
      a.forEach((x, i) => {
        const y = b[i];
        cpu += x === undefined || y === undefined ? NaN : y.cpuSeconds - x.cpuSeconds;
        switches += x === undefined || y === undefined ? NaN : switchesBetween(x, y);
        writes += x === undefined || y === undefined ? NaN : y.syscalls.writes - x.syscalls.writes;
        reads += x === undefined || y === undefined ? NaN : y.syscalls.reads - x.syscalls.reads;
      });
      return {
        cpuUs: (cpu * 1e6) / accepted,
        switches: switches / accepted,
        syscallWrites: writes / accepted,
        syscallReads: reads / accepted,
      };
    };
    const writes =
      streams0 === undefined || streams1 === undefined ? undefined : streamWrites(streams0, streams1, accepted);
    const auditWrites = writes?.[STREAMS.audit];
    const result: RunResult = {
      name: spec.name,
      kind: spec.kind,
      size: spec.size,
      fanout: spec.fanout,
      brokers: spec.brokers,
      shape: spec.shape,
      measureSeconds: seconds,
      acceptedPerSec: accepted / seconds,
      deliveriesPerSec:
        spec.kind === 'core' ? subResult.completed / seconds : (st1.deliveries - st0.deliveries) / seconds,
      completedPerSec: subResult.completed / seconds,
      latencyMs: percentiles(latencies),
      ...(clocks.length === 0 ? {} : { latencySplit: latencySplit(clocks) }),
      ...(spec.kind === 'broker' ? { stages: stagesBetween(st0.stages, st1.stages) } : {}),
      missing: Math.max(0, missing),
      cpu: {
        ...(({ busy, steal }) => ({ machine: busy, steal }))(machinePercent(m0, m1)),
        natsServer: between(others0[0], others1[0]),
        publisher: between(others0[1], others1[1]),
        subscribers: between(others0[2], others1[2]),
        workers: s0.reduce((a, s, i) => a + cpuPercent(s, s1[i] as ProcSample), 0),
      },
      ...(spec.kind === 'core' || !(accepted > 0)
        ? {}
        : {
            perMessage: {
              natsServer: per([others0[0]], [others1[0]]),
              publisher: per([others0[1]], [others1[1]]),
              subscribers: per([others0[2]], [others1[2]]),
              workers: per(s0, s1),
            },
          }),
      ...(writes === undefined ? {} : { streams: writes }),
      ...(auditWrites === undefined ? {} : { auditBytesPerMsg: auditWrites.bytes }),
      failed: published.failed,
      unfinished: published.unfinished,
      shed: published.shed,
      ...(workers.length === 0
        ? {}
        : {
            worker: {
              cpuPercent: s0.reduce((a, s, i) => a + cpuPercent(s, s1[i] as ProcSample), 0),
              cpuUsPerMsg: accepted > 0 ? (cpuSeconds * 1e6) / accepted : NaN,
              peakRssMb,
              readySeconds: ready,
              ...(spec.kind !== 'broker'
                ? {}
                : {
                    perBroker: s0.map((s, i) => ({
                      cpuUsPerMsg:
                        accepted > 0 ? (((s1[i] as ProcSample).cpuSeconds - s.cpuSeconds) * 1e6) / accepted : NaN,
                      acceptedShare: accepted > 0 ? ((st1.each[i] ?? NaN) - (st0.each[i] ?? NaN)) / accepted : NaN,
                    })),
                  }),
              ...(spec.rssEveryMs === undefined
                ? {}
                : {
                    rssTimeline,
                    rssWindowMb: { start: rssOf(s0), end: rssOf(s1) },
                    liveHeapWindowMb: { start: heap0, end: heap1 },
                  }),
            },
          }),
    };
    return result;
  } finally {
    for (const c of children) c.kill();
    await admin?.close().catch(() => undefined);
    // A failure to stop the server must not replace the run's own error (bench/child.ts keeps the children's).
    await nats.stop().catch((err: unknown) => process.stderr.write(`bench: stopping nats-server: ${String(err)}\n`));
  }
}

/** nats-server's CPU profile over the next `ms` (Go pprof, protobuf) into `file`; a failure is reported, not thrown. */
async function natsCpuProfile(port: number, ms: number, file: string): Promise<void> {
  const seconds = Math.max(1, Math.round(ms / 1000));
  try {
    const res = await fetch(`http://127.0.0.1:${port}/debug/pprof/profile?seconds=${seconds}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  } catch (err) {
    process.stderr.write(`bench: nats-server profile: ${String(err)}\n`);
  }
}
