// `--repeat N` as a pure core (bench/repeat.ts, bench/compare.ts, bench/report.ts): medians and spreads of known
// figures, ratios taken per round before the median, and the report's tables — with made-up rounds, no server and
// no clock. The figures are invented; nothing here says how fast anything is.
import { describe, expect, it } from 'vitest';
import { compare, scaleOut } from '../../bench/compare.js';
import type { BenchResults } from '../../bench/main.js';
import { median, medianOf, spread, summarize, type Round } from '../../bench/repeat.js';
import { markdown } from '../../bench/report.js';
import type { RunKind, RunResult } from '../../bench/runs.js';
import type { StageProfile } from '../../bench/stages.js';

function run(
  name: string,
  kind: RunKind,
  acceptedPerSec: number,
  cpuUsPerMsg: number,
  p99: number,
  brokers = 1,
): RunResult {
  return {
    name,
    kind,
    size: 'medium',
    fanout: 3,
    brokers,
    shape: { kind: 'closed', concurrency: 256 },
    measureSeconds: 10,
    acceptedPerSec,
    deliveriesPerSec: acceptedPerSec * 3,
    completedPerSec: acceptedPerSec * 3,
    latencyMs: { count: 100, p50: p99 / 2, p95: p99 * 0.9, p99, max: p99 + 1 },
    missing: 0,
    cpu: { machine: 190, steal: 0, natsServer: 30, publisher: 30, subscribers: 50, workers: 75 },
    failed: 0,
    unfinished: 0,
    shed: 0,
    ...(kind === 'core'
      ? {}
      : {
          worker: {
            cpuPercent: 75,
            cpuUsPerMsg,
            peakRssMb: 200,
            readySeconds: Array.from({ length: brokers }, () => 1.2),
          },
        }),
  };
}

function stage(floorUs: number): StageProfile {
  return {
    stages: { parse: 20, verify: 200 },
    totalUs: 220,
    signPerDeliveryUs: 60,
    floor: {
      us: floorUs,
      verifyUs: 170,
      aeadUs: floorUs - 390,
      signUs: 220,
      msgsPerSec: 1e6 / floorUs,
      nativeAeadUs: 900,
      leavesIn: 41,
      leavesOut: 80,
    },
    ingestBytes: 4269,
    deliveryBytes: 8202,
  };
}

/** One round as main.ts builds it: the runs, the stage profile, and the ratios of that round's own figures. */
function round(
  broker: { msgs: number; cpu: number; p99: number },
  passthrough: number,
  floorUs: number,
  twoBrokers = 300,
): Round {
  const runs = [
    run('broker-medium-f3-b1-sat', 'broker', broker.msgs, broker.cpu, broker.p99),
    run('passthrough-medium-f3-sat', 'passthrough', passthrough, 250, 9),
    run('core-medium-f3-sat', 'core', 30_000, NaN, 120),
    run('broker-medium-f3-b2-sat', 'broker', twoBrokers, 3_000, 2_000, 2),
  ];
  const stages = { 'medium-f3': stage(floorUs) };
  return { runs, stages, comparisons: compare(runs, stages) };
}

function results(rounds: readonly Round[]): BenchResults {
  const s = summarize(rounds);
  return {
    date: '2026-12-02T05:00:00.000Z',
    quick: false,
    repeat: rounds.length,
    tls: true,
    crypto: { backend: 'native', libsodium: 'sodium-native 5.1.0' },
    machine: {
      hostname: 'vm',
      nproc: 2,
      cpuModel: 'Test CPU',
      node: 'v20.0.0',
      loadavgStart: [1, 1, 1],
      loadavgEnd: [2, 2, 2],
    },
    runs: s.runs,
    stages: s.stages,
    comparisons: s.comparisons,
    scaleOut: scaleOut(s.runs),
    rounds,
    file: '/tmp/x.json',
  };
}

/** The markdown row that starts with `| <name> |` in the table whose header starts with `header`. */
function row(text: string, header: string, name: string): string[] {
  const lines = text.split('\n');
  const from = lines.findIndex((l) => l.startsWith(header));
  expect(from, header).toBeGreaterThanOrEqual(0);
  const line = lines.slice(from).find((l) => l.startsWith(`| ${name} |`));
  expect(line, `${name} in ${header}`).toBeDefined();
  return (line as string).split(' | ').map((c) => c.replace(/^\| | \|$/g, ''));
}

describe('median and spread', () => {
  it('takes the middle figure of an odd count and the mean of the middle two of an even one', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([1_687, 2_827, 2_100, 1_950])).toBe(2_025);
    expect(median([7])).toBe(7);
  });

  it('leaves out rounds without a figure (NaN, missing) and has none when no round has one', () => {
    expect(median([NaN, 5, undefined, 1])).toBe(3);
    expect(median([NaN, undefined])).toBeNaN();
    expect(median([])).toBeNaN();
    expect(spread([NaN, 408, 213, undefined, 300])).toEqual({ min: 213, max: 408 });
    expect(spread([NaN])).toBeUndefined();
  });

  it('takes every number of same-shaped records as its own median: objects by member, arrays by item up to the shortest', () => {
    const a = {
      name: 'soak',
      rate: 220,
      w: {
        rss: [
          { s: 5, mb: 150 },
          { s: 10, mb: 170 },
          { s: 15, mb: 171 },
        ],
      },
      note: undefined,
    };
    const b = {
      name: 'soak',
      rate: 230,
      w: {
        rss: [
          { s: 5, mb: 160 },
          { s: 10, mb: 168 },
        ],
      },
      note: undefined,
    };
    const c = {
      name: 'soak',
      rate: 200,
      w: {
        rss: [
          { s: 5.1, mb: 140 },
          { s: 10.1, mb: 190 },
        ],
      },
      note: undefined,
    };
    expect(medianOf([a, b, c])).toEqual({
      name: 'soak',
      rate: 220,
      w: {
        rss: [
          { s: 5, mb: 150 },
          { s: 10, mb: 170 },
        ],
      },
      note: undefined,
    });
    expect(() => medianOf([])).toThrow(TypeError);
  });
});

describe('summarize', () => {
  const rounds = [
    round({ msgs: 400, cpu: 1_700, p99: 700 }, 2_000, 600, 280),
    round({ msgs: 500, cpu: 2_800, p99: 900 }, 1_000, 400, 330),
    round({ msgs: 450, cpu: 2_000, p99: 800 }, 2_500, 500, 300),
  ];
  const s = summarize(rounds);

  it('gives each run figure its median over the rounds', () => {
    const b = s.runs[0];
    expect(s.runs.map((r) => r.name)).toEqual(rounds[0]?.runs.map((r) => r.name));
    expect(b?.acceptedPerSec).toBe(450);
    expect(b?.worker?.cpuUsPerMsg).toBe(2_000);
    expect(b?.latencyMs.p99).toBe(800);
    expect(b?.latencyMs.p50).toBe(400);
    expect(s.runs[1]?.acceptedPerSec).toBe(2_000);
    expect(s.runs[2]?.worker).toBeUndefined();
    expect(s.stages['medium-f3']?.floor.us).toBe(500);
    expect(s.stages['medium-f3']?.floor.aeadUs).toBe(110);
  });

  it('takes the median of the per-round ratios, not the ratio of the medians', () => {
    const c = s.comparisons[0];
    // × passthrough per round: 400/2000 = 0.2, 500/1000 = 0.5, 450/2500 = 0.18 → median 0.2 (medians' ratio: 450/2000 = 0.225).
    expect(c?.vsPassthrough).toBeCloseTo(0.2, 12);
    // floor share per round: 600/1700, 400/2800, 500/2000 = 0.353, 0.143, 0.25 → 0.25 (here equal to the medians' ratio).
    expect(c?.floorShareOfCpu).toBeCloseTo(0.25, 12);
    // × crypto floor per round: 400/(1e6/600) = 0.24, 500/2500 = 0.2, 450/2000 = 0.225 → 0.225 (medians' ratio: 450/2000 = 0.225).
    expect(c?.vsFloor).toBeCloseTo(0.225, 12);
    // × one broker per round: 280/400 = 0.7, 330/500 = 0.66, 300/450 = 0.667 → 0.667 (medians' ratio: 300/450 = 0.667).
    expect(s.comparisons[1]?.scaleVsOneBroker).toBeCloseTo(300 / 450, 12);
    expect(s.comparisons.map((x) => x.run)).toEqual(['broker-medium-f3-b1-sat', 'broker-medium-f3-b2-sat']);
    expect(s.comparisons[0]?.scaleVsOneBroker).toBeUndefined();
  });

  it('returns one round as it is', () => {
    expect(summarize([rounds[0] as Round])).toEqual(rounds[0]);
  });

  it('refuses rounds that ran different plans', () => {
    const other: Round = { ...(rounds[1] as Round), runs: [...(rounds[1] as Round).runs].reverse() };
    expect(() => summarize([rounds[0] as Round, other])).toThrow(/rounds differ at broker-medium-f3-b1-sat/);
    expect(() => summarize([rounds[0] as Round, { ...(rounds[1] as Round), stages: {} }])).toThrow(
      /rounds differ at stage profile medium-f3/,
    );
    expect(() => summarize([])).toThrow(TypeError);
  });
});

describe('the report of repeated rounds', () => {
  const rounds = [
    round({ msgs: 400, cpu: 1_700, p99: 700.25 }, 2_000, 600),
    round({ msgs: 500, cpu: 2_800, p99: 900 }, 1_000, 400),
    round({ msgs: 450, cpu: 2_000, p99: 800 }, 2_500, 500),
  ];

  it('shows the median and, for the key figures, [min–max] over the rounds', () => {
    const text = markdown(results(rounds));
    expect(text).toContain('Medians of 3 rounds run round-robin');
    expect(text).toContain('the median of those per-round ratios, not ratios of the medians');
    const b = row(text, '| run |', 'broker-medium-f3-b1-sat');
    expect(b[2]).toBe('450 [400–500]'); // msgs/s
    expect(b[3]).toBe('1350'); // deliveries/s: the median alone
    expect(b[5]).toBe('400.0 / 720.0 / 800.0 [700.3–900.0]'); // p99 with its spread
    expect(b[8]).toBe('2000 [1700–2800]'); // CPU µs/msg
    const c = row(text, '| broker run |', 'broker-medium-f3-b1-sat');
    expect(c[1]).toBe('0.20'); // × passthrough
    expect(c[4]).toBe('25 [14–35] %'); // floor share
    const f = row(text, '| CPU µs/msg |', 'medium-f3');
    expect(f[4]).toBe('500 [400–600] (170 / 110 / 220)'); // floor µs (verify / AEAD / sign)
  });

  it('prints one round as a single pass: no spreads, no note on rounds', () => {
    const text = markdown(results([rounds[0] as Round]));
    expect(text).not.toContain('[');
    expect(text).not.toContain('round');
    expect(row(text, '| run |', 'broker-medium-f3-b1-sat')[2]).toBe('400');
    expect(row(text, '| broker run |', 'broker-medium-f3-b1-sat')[4]).toBe('35 %');
    expect(row(text, '| CPU µs/msg |', 'medium-f3')[4]).toBe('600 (170 / 210 / 220)');
  });
});

describe('scale-out at a fixed offered rate', () => {
  /** An open-loop run at 200/s, its brokers' CPU µs per message of the run and their shares of the messages. */
  const open = (name: string, brokers: number, p99: number, each: readonly [number, number][]): RunResult => {
    const base = run(
      name,
      'broker',
      200,
      each.reduce((a, [us]) => a + us, 0),
      p99,
      brokers,
    );
    return {
      ...base,
      shape: { kind: 'open', rate: 200 },
      worker: {
        ...(base.worker as NonNullable<RunResult['worker']>),
        perBroker: each.map(([cpuUsPerMsg, acceptedShare]) => ({ cpuUsPerMsg, acceptedShare })),
      },
    };
  };
  const runs = [
    run('broker-medium-f3-b1-sat', 'broker', 400, 2_000, 800),
    open('broker-medium-f3-b1-halfsat', 1, 60, [[1_500, 1]]),
    open('broker-medium-f3-b2-halfsat', 2, 40, [
      [900, 0.52],
      [850, 0.48],
    ]),
  ];

  it('sets the two-broker run against the one-broker run of the same rate: each broker, the sum, the ratio', () => {
    expect(scaleOut(runs)).toEqual([
      {
        run: 'broker-medium-f3-b2-halfsat',
        oneBrokerRun: 'broker-medium-f3-b1-halfsat',
        offered: 200,
        one: { acceptedPerSec: 200, cpuUsPerMsg: 1_500, p50: 30, p99: 60 },
        two: {
          acceptedPerSec: 200,
          cpuUsPerMsg: 1_750,
          perBroker: [
            { cpuUsPerMsg: 900, acceptedShare: 0.52 },
            { cpuUsPerMsg: 850, acceptedShare: 0.48 },
          ],
          p50: 20,
          p99: 40,
        },
        cpuRatio: 1_750 / 1_500,
      },
    ]);
    // No open-loop one-broker run of that name: nothing to compare (the saturation pair has its own ratio).
    expect(scaleOut(runs.filter((r) => r.name !== 'broker-medium-f3-b1-halfsat'))).toEqual([]);
  });

  it('prints each broker with its share, the sum, the latencies and the ratio', () => {
    const r = { ...results([{ runs, stages: {}, comparisons: [] }]) };
    const cells = row(markdown(r), '| scale-out at a fixed rate |', 'broker-medium-f3-b2-halfsat');
    expect(cells.slice(1)).toEqual([
      'broker-medium-f3-b1-halfsat',
      '200/s',
      '200, 1500, 30.0 / 60.0',
      '200, 900 (52 %) + 850 (48 %) = 1750, 20.0 / 40.0',
      '1.17',
    ]);
  });
});
