// The ratios of a broker run to its baselines (docs/performance.md, *Baselines and ratios*): pure arithmetic over
// one round's run results and stage profiles, so that with `--repeat N` every ratio is taken from figures measured
// in the same round (bench/repeat.ts takes the median afterwards).
import type { RunResult } from './runs.js';
import type { StageProfile } from './stages.js';

/** A broker run set against its baselines on the same messages and fan-out. */
export interface Comparison {
  readonly run: string;
  readonly vsPassthrough: number;
  readonly vsCore: number;
  /** Broker msgs/s over the crypto floor's msgs/s on one core. */
  readonly vsFloor: number;
  /** Floor CPU µs over the broker's CPU µs per message: the share of broker CPU that is unavoidable crypto. */
  readonly floorShareOfCpu: number;
  /** 2-broker runs: throughput over the matching 1-broker run. */
  readonly scaleVsOneBroker?: number;
  /** Estimated broker CPU µs per message saved by the deferred optimisations (docs/performance-evidence.md). */
  readonly deferred: {
    readonly oneSignatureUs: number;
    readonly nativeAeadUs: number;
    readonly projectedMsgsPerCoreSec: number;
  };
}

function ratio(a: number, b: number | undefined): number {
  return b === undefined || !(b > 0) ? NaN : a / b;
}

/** Every closed-loop broker run of `runs` against the baselines and stage profile of the same `runs` and `stages`. */
export function compare(runs: readonly RunResult[], stages: Readonly<Record<string, StageProfile>>): Comparison[] {
  const out: Comparison[] = [];
  for (const r of runs) {
    if (r.kind !== 'broker' || r.shape.kind !== 'closed') continue;
    const same = (kind: RunResult['kind']): RunResult | undefined =>
      runs.find((x) => x.kind === kind && x.size === r.size && x.fanout === r.fanout && x.shape.kind === 'closed');
    const stage = stages[`${r.size}-f${r.fanout}`];
    const one = runs.find(
      (x) =>
        x.kind === 'broker' &&
        x.brokers === 1 &&
        x.size === r.size &&
        x.fanout === r.fanout &&
        x.shape.kind === 'closed',
    );
    const cpuUs = r.worker?.cpuUsPerMsg ?? NaN;
    const oneSignatureUs = stage === undefined ? NaN : stage.signPerDeliveryUs * Math.max(0, r.fanout - 1);
    const nativeAeadUs = stage === undefined ? NaN : Math.max(0, stage.floor.aeadUs - stage.floor.nativeAeadUs);
    out.push({
      run: r.name,
      vsPassthrough: ratio(r.acceptedPerSec, same('passthrough')?.acceptedPerSec),
      vsCore: ratio(r.acceptedPerSec, same('core')?.acceptedPerSec),
      vsFloor: ratio(r.acceptedPerSec, stage?.floor.msgsPerSec),
      floorShareOfCpu: ratio(stage?.floor.us ?? NaN, cpuUs),
      ...(r.brokers > 1 && one !== undefined && one !== r
        ? { scaleVsOneBroker: ratio(r.acceptedPerSec, one.acceptedPerSec) }
        : {}),
      deferred: {
        oneSignatureUs,
        nativeAeadUs,
        projectedMsgsPerCoreSec: 1e6 / (cpuUs - oneSignatureUs - nativeAeadUs),
      },
    });
  }
  return out;
}

/** One broker against two at the same fixed offered rate: what the second broker costs and buys per message. */
export interface ScaleOut {
  /** The two-broker run and the one-broker run it is set against. */
  readonly run: string;
  readonly oneBrokerRun: string;
  /** Offered msgs/s (open loop), the same for both. */
  readonly offered: number;
  readonly one: {
    readonly acceptedPerSec: number;
    readonly cpuUsPerMsg: number;
    readonly p50: number;
    readonly p99: number;
  };
  readonly two: {
    readonly acceptedPerSec: number;
    /** Both brokers' CPU µs per message accepted: the sum of perBroker. */
    readonly cpuUsPerMsg: number;
    /** Each broker's CPU µs over every message accepted, and its share of those messages. */
    readonly perBroker: readonly { readonly cpuUsPerMsg: number; readonly acceptedShare: number }[];
    readonly p50: number;
    readonly p99: number;
  };
  /** two.cpuUsPerMsg ÷ one.cpuUsPerMsg: above 1, two brokers spend more CPU on a message than one. */
  readonly cpuRatio: number;
}

/**
 * Each open-loop run of several brokers against the one-broker run of the same name (`-b2-` → `-b1-`) and offered
 * rate: the scale-out figures on a machine where the load generators leave the second broker CPU to use.
 */
export function scaleOut(runs: readonly RunResult[]): ScaleOut[] {
  const out: ScaleOut[] = [];
  for (const r of runs) {
    if (r.kind !== 'broker' || r.brokers < 2 || r.shape.kind !== 'open') continue;
    const oneName = r.name.replace(`-b${r.brokers}-`, '-b1-');
    const one = runs.find((x) => x.name === oneName && x.brokers === 1);
    if (one === undefined || one.shape.kind !== 'open') continue;
    const cpu = (x: RunResult): number => x.worker?.cpuUsPerMsg ?? NaN;
    out.push({
      run: r.name,
      oneBrokerRun: one.name,
      offered: r.shape.rate,
      one: {
        acceptedPerSec: one.acceptedPerSec,
        cpuUsPerMsg: cpu(one),
        p50: one.latencyMs.p50,
        p99: one.latencyMs.p99,
      },
      two: {
        acceptedPerSec: r.acceptedPerSec,
        cpuUsPerMsg: cpu(r),
        perBroker: r.worker?.perBroker ?? [],
        p50: r.latencyMs.p50,
        p99: r.latencyMs.p99,
      },
      cpuRatio: ratio(cpu(r), cpu(one)),
    });
  }
  return out;
}
