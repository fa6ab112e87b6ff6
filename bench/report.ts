// The bench's printed summary: markdown tables of the runs, the ratios to the baselines, the per-stage
// CPU profile and the soak's RSS timeline (the JSON file holds everything). With `--repeat N` the tables show
// each figure's median over the rounds, and the key figures their spread as `median [min–max]`.
import type { BenchResults } from './main.js';
import { spread, type Round } from './repeat.js';
import { SEGMENTS, type Segment } from './latency-split.js';
import { STAGES } from '../src/broker/metrics.js';

function n(v: number | undefined, digits = 0): string {
  return v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

/** A key figure: the median, and with several rounds its spread over them, `445 [412–470]`. */
function spreadOf(
  r: BenchResults,
  median: number | undefined,
  pick: (round: Round) => number | undefined,
  digits = 0,
): string {
  const s = r.repeat > 1 ? spread(r.rounds.map(pick)) : undefined;
  return s === undefined ? n(median, digits) : `${n(median, digits)} [${n(s.min, digits)}–${n(s.max, digits)}]`;
}

/** A run's offered load: its open-loop rate, or the closed loop's publishes in flight. */
function offered(shape: BenchResults['runs'][number]['shape']): string {
  return shape.kind === 'open' ? `${shape.rate}/s` : `closed ×${shape.concurrency}`;
}

export function markdown(r: BenchResults): string {
  const lines: string[] = [];
  const m = r.machine;
  const run = (round: Round, name: string) => round.runs.find((x) => x.name === name);
  lines.push(`## phi-broker bench ${r.date}${r.quick ? ' (quick)' : ''}`, '');
  lines.push(
    `${m.nproc} × ${m.cpuModel}, Node ${m.node}; load average ${m.loadavgStart.map((x) => x.toFixed(2)).join(' ')} at start, ${m.loadavgEnd.map((x) => x.toFixed(2)).join(' ')} at end`,
    '',
    `Connections: ${r.tls ? 'mTLS (every process as its own identity)' : 'plaintext (--no-tls)'}; crypto: ${r.crypto.backend} (${r.crypto.libsodium})`,
    '',
  );
  if (r.repeat > 1) {
    lines.push(
      `Medians of ${r.repeat} rounds run round-robin (each round every run once, then the stage profiles); \`median [min–max]\` gives a key figure's spread over the rounds. Each figure is its own median: one row's figures may come from different rounds.`,
      '',
    );
  }
  // --only gateway-inbound runs no broker run: no empty tables.
  if (r.runs.length > 0) {
    lines.push(
      '| run | offered | msgs/s | deliveries/s (broker) | completed/s (subscribers) | p50 / p95 / p99 ms | unfinished / shed | worker CPU % | CPU µs/msg | peak RSS MB | ready s |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const x of r.runs) {
      const l = x.latencyMs;
      lines.push(
        `| ${x.name} | ${offered(x.shape)} | ${spreadOf(r, x.acceptedPerSec, (k) => run(k, x.name)?.acceptedPerSec)} | ${n(x.deliveriesPerSec)} | ${n(x.completedPerSec)} | ${n(l.p50, 1)} / ${n(l.p95, 1)} / ${spreadOf(r, l.p99, (k) => run(k, x.name)?.latencyMs.p99, 1)} | ${x.unfinished} / ${x.shed} | ${n(x.worker?.cpuPercent)} | ${spreadOf(r, x.worker?.cpuUsPerMsg, (k) => run(k, x.name)?.worker?.cpuUsPerMsg)} | ${n(x.worker?.peakRssMb)} | ${x.worker === undefined ? '–' : x.worker.readySeconds.map((s) => s.toFixed(1)).join(', ')} |`,
      );
    }
    lines.push(
      '',
      `| where the CPU went (% of one core; ${m.nproc} cores = ${m.nproc * 100} %) | machine busy | stolen | nats-server | publisher | subscribers | worker(s) | rest |`,
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const x of r.runs) {
      const c = x.cpu;
      const rest = c.machine - c.natsServer - c.publisher - c.subscribers - c.workers;
      lines.push(
        `| ${x.name} | ${n(c.machine)} | ${n(c.steal)} | ${n(c.natsServer)} | ${n(c.publisher)} | ${n(c.subscribers)} | ${n(c.workers)} | ${n(rest)} |`,
      );
    }
  }
  if (r.comparisons.length > 0) {
    if (r.repeat > 1)
      lines.push(
        '',
        'Ratios: each round computes them from its own figures (the broker run, its baselines and its stage profile of that round); the table shows the median of those per-round ratios, not ratios of the medians.',
      );
    lines.push(
      '',
      '| broker run | × passthrough | × core NATS | × crypto floor | floor share of broker CPU | × one broker | deferred: −µs one signature | −µs native AEAD | projected msgs/core-s |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  }
  for (const c of r.comparisons) {
    lines.push(
      `| ${c.run} | ${n(c.vsPassthrough, 2)} | ${n(c.vsCore, 3)} | ${n(c.vsFloor, 2)} | ${spreadOf(r, c.floorShareOfCpu * 100, (k) => (k.comparisons.find((y) => y.run === c.run)?.floorShareOfCpu ?? NaN) * 100)} % | ${n(c.scaleVsOneBroker, 2)} | ${n(c.deferred.oneSignatureUs)} | ${n(c.deferred.nativeAeadUs)} | ${n(c.deferred.projectedMsgsPerCoreSec)} |`,
    );
  }
  lines.push(...perMessage(r));
  lines.push(...latencySplitTable(r));
  lines.push(...stagesTable(r));
  lines.push(...scaleOutTable(r));
  lines.push(...writes(r));
  const keys = Object.keys(r.stages);
  if (keys.length > 0) {
    const names = Object.keys(r.stages[keys[0] as string]?.stages ?? {});
    lines.push(
      '',
      `| CPU µs/msg | ${names.join(' | ')} | sum | crypto floor (verify / AEAD / sign) | floor msgs/s | native-AEAD floor part | bytes in / out |`,
    );
    lines.push(`|---|${names.map(() => '---:').join('|')}|---:|---:|---:|---:|---:|`);
    for (const k of keys) {
      const s = r.stages[k];
      if (s === undefined) continue;
      const f = s.floor;
      lines.push(
        `| ${k} | ${names.map((x) => n(s.stages[x])).join(' | ')} | ${n(s.totalUs)} | ${spreadOf(r, f.us, (round) => round.stages[k]?.floor.us)} (${n(f.verifyUs)} / ${n(f.aeadUs)} / ${n(f.signUs)}) | ${n(f.msgsPerSec)} | ${n(f.nativeAeadUs)} | ${s.ingestBytes} / ${s.deliveryBytes} |`,
      );
    }
  }
  const soak = r.runs.find((x) => x.worker?.rssTimeline !== undefined);
  if (soak?.worker?.rssTimeline !== undefined) {
    const w = soak.worker.rssWindowMb;
    const offered = soak.shape.kind === 'open' ? `${soak.shape.rate}/s offered, ` : '';
    const h = soak.worker.liveHeapWindowMb;
    const delta = (d: number): string => `${d >= 0 ? '+' : ''}${n(d, 1)}`;
    const window =
      (w === undefined
        ? ''
        : `; measured window: ${n(w.start)} MB at its start, ${n(w.end)} MB at its end (${delta(w.end - w.start)} MB)`) +
      (h === undefined
        ? ''
        : `; live heap after a full GC ${n(h.start, 1)} → ${n(h.end, 1)} MB (${delta(h.end - h.start)} MB)`);
    lines.push(
      '',
      `Soak (${soak.name}, ${offered}p95 ${n(soak.latencyMs.p95, 1)} ms): broker RSS MB over time: ${soak.worker.rssTimeline.map((p) => `${p.s}s ${n(p.rssMb)}`).join(', ')}${window}`,
    );
  }
  lines.push(...gatewayInbound(r));
  return `${lines.join('\n')}\n`;
}

/** The gateway-inbound scenario: the same resource created through the gateway and with the SDK, and their ratio. */
function gatewayInbound(r: BenchResults): string[] {
  const g = r.gatewayInbound;
  if (g === undefined) return [];
  const lines = [
    '',
    `| gateway-inbound (${g.resource}, closed ×${g.concurrency}) | resources/s | p50 / p95 / p99 ms | not accepted | CPU % nats-server / broker / gateway / client | machine busy % |`,
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const [name, a] of [
    ['SDK as the partner', g.sdk],
    ['POST /[type] through the gateway (HTTPS)', g.gateway],
  ] as const) {
    const l = a.latencyMs;
    const c = a.cpu;
    lines.push(
      `| ${name} | ${n(a.perSec)} | ${n(l.p50, 1)} / ${n(l.p95, 1)} / ${n(l.p99, 1)} | ${a.failed} | ${n(c.natsServer)} / ${n(c.broker)} / ${n(c.gateway)} / ${n(c.client)} | ${n(c.machine)} |`,
    );
  }
  lines.push(`| gateway ÷ SDK | ${n(g.ratio.perSec, 2)} | p50 ${n(g.ratio.p50, 2)} / p99 ${n(g.ratio.p99, 2)} | | | |`);
  return lines;
}

/** Per message accepted, each process's CPU µs and context switches (below saturation this is where the cost shows). */
function perMessage(r: BenchResults): string[] {
  const runs = r.runs.filter((x) => x.perMessage !== undefined && x.kind === 'broker');
  if (runs.length === 0) return [];
  const lines = [
    '',
    '| per message accepted: CPU µs / context switches | offered | nats-server | publisher | subscribers | worker(s) | all | p50 / p99 ms | audit bytes stored |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of runs) {
    const p = x.perMessage;
    if (p === undefined) continue;
    const cell = (c: { cpuUs: number; switches: number }): string => `${n(c.cpuUs)} / ${n(c.switches, 1)}`;
    const all = [p.natsServer, p.publisher, p.subscribers, p.workers].reduce(
      (a, c) => ({ cpuUs: a.cpuUs + c.cpuUs, switches: a.switches + c.switches }),
      { cpuUs: 0, switches: 0 },
    );
    lines.push(
      `| ${x.name} | ${offered(x.shape)} | ${cell(p.natsServer)} | ${cell(p.publisher)} | ${cell(p.subscribers)} | ${cell(p.workers)} | ${cell(all)} | ${n(x.latencyMs.p50, 1)} / ${n(x.latencyMs.p99, 1)} | ${n(x.auditBytesPerMsg)} |`,
    );
  }
  return lines;
}

/** Open-loop broker runs: each segment of a delivery's latency, and where the slowest 1 % spent theirs. */
function latencySplitTable(r: BenchResults): string[] {
  const runs = r.runs.filter((x) => x.latencySplit !== undefined && x.shape.kind === 'open');
  if (runs.length === 0) return [];
  const lines = [
    '',
    "| latency split, ms: p50 / p99 (mean of the slowest 1 %) | offered | start → publisher's seal | → broker's seal of the copy | → subscriber's handler | end to end p99 |",
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const x of runs) {
    const s = x.latencySplit;
    if (s === undefined) continue;
    const cell = (k: Segment): string =>
      `${n(s.segments[k].p50, 1)} / ${n(s.segments[k].p99, 1)} (${n(s.tailMeans[k], 1)})`;
    lines.push(`| ${x.name} | ${offered(x.shape)} | ${SEGMENTS.map(cell).join(' | ')} | ${n(x.latencyMs.p99, 1)} |`);
  }
  return lines;
}

/** The brokers' per-stage times over the window (phi_broker_stage_seconds), in the order a message meets them. */
function stagesTable(r: BenchResults): string[] {
  const runs = r.runs.filter((x) => x.stages !== undefined && Object.keys(x.stages).length > 0);
  if (runs.length === 0) return [];
  const lines = [
    '',
    `| broker stages, ms: mean / p99 (histogram buckets) | ${STAGES.join(' | ')} |`,
    `|---|${STAGES.map(() => '---:').join('|')}|`,
  ];
  for (const x of runs) {
    const cell = (stage: string): string => {
      const f = x.stages?.[stage];
      return f === undefined ? '–' : `${n(f.meanMs, 1)} / ${n(f.p99Ms, 1)}`;
    };
    lines.push(`| ${x.name} | ${STAGES.map(cell).join(' | ')} |`);
  }
  return lines;
}

/** One broker against two at the same offered rate: CPU µs per message (each broker's and the sum) and latency. */
function scaleOutTable(r: BenchResults): string[] {
  if (r.scaleOut.length === 0) return [];
  const lines = [
    '',
    '| scale-out at a fixed rate | against | offered | one broker: msgs/s, CPU µs/msg, p50 / p99 ms | two brokers: msgs/s, CPU µs/msg each (share of msgs) = sum, p50 / p99 ms | CPU two ÷ one |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const s of r.scaleOut) {
    const each = s.two.perBroker.map((b) => `${n(b.cpuUsPerMsg)} (${n(b.acceptedShare * 100)} %)`).join(' + ');
    lines.push(
      `| ${s.run} | ${s.oneBrokerRun} | ${s.offered}/s | ${n(s.one.acceptedPerSec)}, ${n(s.one.cpuUsPerMsg)}, ${n(s.one.p50, 1)} / ${n(s.one.p99, 1)} | ${n(s.two.acceptedPerSec)}, ${each} = ${n(s.two.cpuUsPerMsg)}, ${n(s.two.p50, 1)} / ${n(s.two.p99, 1)} | ${n(s.cpuRatio, 2)} |`,
    );
  }
  return lines;
}

/**
 * Per message accepted, what each stream stored (messages / bytes; `~`: estimated from the mean stored size, for a
 * work queue or an overwritten KV key) and each process's write / read system calls.
 */
function writes(r: BenchResults): string[] {
  const runs = r.runs.filter((x) => x.streams !== undefined && x.perMessage !== undefined);
  if (runs.length === 0) return [];
  const names = [...new Set(runs.flatMap((x) => Object.keys(x.streams ?? {})))].sort();
  const lines = [
    '',
    `| per message accepted: stored messages / bytes | ${names.join(' | ')} | all |`,
    `|---|${names.map(() => '---:').join('|')}|---:|`,
  ];
  for (const x of runs) {
    const s = x.streams ?? {};
    const cells = names.map((k) => {
      const w = s[k];
      return w === undefined ? '–' : `${n(w.messages, 2)} / ${w.bytesExact ? '' : '~'}${n(w.bytes)}`;
    });
    const all = Object.values(s).reduce((a, w) => ({ m: a.m + w.messages, b: a.b + w.bytes }), { m: 0, b: 0 });
    lines.push(`| ${x.name} | ${cells.join(' | ')} | ${n(all.m, 2)} / ${n(all.b)} |`);
  }
  lines.push(
    '',
    '| per message accepted: write / read system calls | nats-server | publisher | subscribers | worker(s) | all |',
    '|---|---:|---:|---:|---:|---:|',
  );
  for (const x of runs) {
    const p = x.perMessage;
    if (p === undefined) continue;
    const procs = [p.natsServer, p.publisher, p.subscribers, p.workers];
    const cell = (w: number, rd: number): string => `${n(w, 1)} / ${n(rd, 1)}`;
    const sum = (f: (c: (typeof procs)[number]) => number): number => procs.reduce((a, c) => a + f(c), 0);
    lines.push(
      `| ${x.name} | ${procs.map((c) => cell(c.syscallWrites, c.syscallReads)).join(' | ')} | ${cell(
        sum((c) => c.syscallWrites),
        sum((c) => c.syscallReads),
      )} |`,
    );
  }
  return lines;
}
