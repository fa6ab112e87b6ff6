// `npm run bench -- --quick` over the real path (nats-server, broker processes, SDK publishers and
// subscribers, the baselines), run as a user runs it: the compiled bench (dist/bench/main.js, built by
// `npm run build`). It asserts that the bench completes, that every publish was accepted and that every
// figure it reports is a positive finite number — never how fast anything is. The quick run includes the
// gateway-inbound scenario (HTTPS creates through a gateway process against the SDK).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchResults } from '../../bench/main.js';
import { ROOT } from '../helpers/stack.js';

const MAIN = join(ROOT, 'dist', 'bench', 'main.js');

let out: string;
let results: BenchResults;
let stdout = '';

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
  out = mkdtempSync(join(tmpdir(), 'phi-broker-bench-test-'));
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, '--quick', '--out', out], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (c) => (c === 0 ? resolve(c) : reject(new Error(`bench exited with ${c}:\n${stderr}`))));
  });
  expect(code).toBe(0);
  const files = readdirSync(out).filter((f) => f.endsWith('.json'));
  expect(files).toHaveLength(1);
  results = JSON.parse(readFileSync(join(out, files[0] as string), 'utf8')) as BenchResults;
}, 300_000);

afterAll(() => {
  if (out !== undefined) rmSync(out, { recursive: true, force: true });
});

function positive(value: unknown, what: string): void {
  expect(typeof value, what).toBe('number');
  expect(Number.isFinite(value as number) && (value as number) > 0, `${what} = ${String(value)}`).toBe(true);
}

describe('npm run bench -- --quick', () => {
  it('runs the broker and all three baselines, every publish accepted', () => {
    expect(results.quick).toBe(true);
    expect(results.runs.map((r) => r.kind).sort()).toEqual(['broker', 'broker', 'core', 'passthrough']);
    for (const r of results.runs) expect(r.failed, r.name).toBe(0);
    expect(Object.keys(results.stages)).toEqual(['medium-f3']);
  });

  it('runs over mTLS with the native crypto backend, and says so', () => {
    expect(results.tls).toBe(true);
    expect(results.crypto.backend).toBe('native');
    expect(stdout).toContain('Connections: mTLS');
  });

  it('is one round by default: the JSON keeps it under rounds, the summary prints it without medians or spreads', () => {
    expect(results.repeat).toBe(1);
    expect(results.rounds).toHaveLength(1);
    expect(results.rounds[0]).toEqual({ runs: results.runs, stages: results.stages, comparisons: results.comparisons });
    expect(stdout).not.toContain('Medians of');
    expect(stdout).not.toMatch(/\d \[\d/);
  });

  it("times every broker stage over the window, and splits the open-loop run's latency at the two seals", () => {
    for (const r of results.runs.filter((x) => x.kind === 'broker')) {
      // The broker's own histogram (phi_broker_stage_seconds), read over the real path at the window's edges.
      for (const stage of ['queued', 'verify', 'replay_claim', 'audit_append', 'publish_deliveries', 'receipt']) {
        positive(r.stages?.[stage]?.count, `${r.name} ${stage} count`);
        positive(r.stages?.[stage]?.meanMs, `${r.name} ${stage} mean`);
        positive(r.stages?.[stage]?.p99Ms, `${r.name} ${stage} p99`);
      }
    }
    const open = results.runs.find((r) => r.kind === 'broker' && r.shape.kind === 'open');
    const split = open?.latencySplit;
    expect(split?.segments.after.count).toBe(open?.latencyMs.count);
    positive(split?.segments.after.p50, 'from the broker seal to the handler, p50');
    positive(split?.tailCount, 'deliveries in the slowest 1 %');
    expect(stdout).toContain('| latency split');
    expect(stdout).toContain('| broker stages');
  });

  it('reports throughput, latency and worker figures that are positive finite numbers', () => {
    for (const r of results.runs) {
      positive(r.acceptedPerSec, `${r.name} acceptedPerSec`);
      positive(r.deliveriesPerSec, `${r.name} deliveriesPerSec`);
      positive(r.completedPerSec, `${r.name} completedPerSec`);
      // A baseline's subscribers may still be behind when a saturation run ends: then it has no latency sample
      // (count 0, reported as missing) rather than a figure; the broker's runs always have one.
      if (r.kind === 'broker' || r.latencyMs.count > 0) {
        positive(r.latencyMs.count, `${r.name} latency samples`);
        for (const q of ['p50', 'p95', 'p99', 'max'] as const) positive(r.latencyMs[q], `${r.name} latency ${q}`);
      } else positive(r.missing, `${r.name} missing deliveries`);
      // Every run has a nats-server, a publisher and subscribers doing work; stolen time may be zero.
      for (const k of ['machine', 'natsServer', 'publisher', 'subscribers'] as const)
        positive(r.cpu[k], `${r.name} cpu.${k}`);
      expect(Number.isFinite(r.cpu.steal) && r.cpu.steal >= 0, `${r.name} cpu.steal = ${r.cpu.steal}`).toBe(true);
      if (r.kind === 'core') continue;
      positive(r.cpu.workers, `${r.name} cpu.workers`);
      expect(r.worker, r.name).toBeDefined();
      positive(r.worker?.cpuPercent, `${r.name} cpuPercent`);
      positive(r.worker?.cpuUsPerMsg, `${r.name} cpuUsPerMsg`);
      positive(r.worker?.peakRssMb, `${r.name} peakRssMb`);
      for (const s of r.worker?.readySeconds ?? []) positive(s, `${r.name} readySeconds`);
    }
    const soak = results.runs.find((r) => r.worker?.rssTimeline !== undefined);
    expect(soak?.worker?.rssTimeline?.length).toBeGreaterThan(0);
    for (const p of soak?.worker?.rssTimeline ?? []) positive(p.rssMb, 'rss sample');
    positive(soak?.worker?.rssWindowMb?.start, 'rss at the start of the measured window');
    positive(soak?.worker?.rssWindowMb?.end, 'rss at the end of the measured window');
    positive(soak?.worker?.liveHeapWindowMb?.start, 'live heap at the start of the measured window');
    positive(soak?.worker?.liveHeapWindowMb?.end, 'live heap at the end of the measured window');
    expect(stdout).toMatch(
      /measured window: \d+ MB at its start, \d+ MB at its end .*; live heap after a full GC [\d.]+ → [\d.]+ MB/,
    );
  });

  it('counts what each accepted message stored per stream, and the system calls of each process', () => {
    // Positive figures only: the window's edges are read apart, with up to 256 publishes and the broker's
    // concurrency in flight, which in the quick run's 2 s is a large share of what was accepted.
    const brokerRuns = results.runs.filter((r) => r.kind === 'broker' && r.shape.kind === 'closed');
    expect(brokerRuns.length).toBeGreaterThan(0);
    for (const r of brokerRuns) {
      const s = r.streams ?? {};
      // Each accepted Patient stores an ingest message, its deliveries, a receipt, a replay claim and a registry write.
      for (const k of ['PHI_INGEST', 'PHI_DELIVER', 'PHI_RECEIPTS', 'KV_phi_seen', 'KV_phi_registry'])
        positive(s[k]?.messages, `${r.name} ${k} messages`);
      expect(s['PHI_DELIVER']?.bytesExact, `${r.name} PHI_DELIVER only grows`).toBe(true);
      positive(s['PHI_DELIVER']?.bytes, `${r.name} PHI_DELIVER bytes`);
      positive(r.auditBytesPerMsg, `${r.name} auditBytesPerMsg`);
      positive(r.perMessage?.natsServer.syscallWrites, `${r.name} nats-server write system calls`);
      positive(r.perMessage?.workers.syscallWrites, `${r.name} broker write system calls`);
    }
    expect(stdout).toContain('| per message accepted: stored messages / bytes |');
    expect(stdout).toContain('| per message accepted: write / read system calls |');
  });

  it('reports the per-stage profile, the crypto floor and the ratios as positive finite numbers', () => {
    const stage = results.stages['medium-f3'];
    for (const [name, us] of Object.entries(stage?.stages ?? {})) positive(us, `stage ${name}`);
    expect(Object.keys(stage?.stages ?? {})).toEqual([
      'parse',
      'verify',
      'hash',
      'decrypt',
      'validate',
      'project',
      'encrypt',
      'sign',
      'publish',
      'registry',
      'audit',
    ]);
    for (const [name, v] of Object.entries(stage?.floor ?? {})) positive(v, `floor ${name}`);
    positive(stage?.signPerDeliveryUs, 'signPerDeliveryUs');
    expect(results.comparisons).toHaveLength(1);
    const c = results.comparisons[0];
    positive(c?.vsPassthrough, 'vsPassthrough');
    positive(c?.vsCore, 'vsCore');
    positive(c?.vsFloor, 'vsFloor');
    positive(c?.floorShareOfCpu, 'floorShareOfCpu');
    positive(c?.deferred.oneSignatureUs, 'deferred one signature');
    positive(c?.deferred.projectedMsgsPerCoreSec, 'deferred projection');
    expect(c?.deferred.nativeAeadUs).toBeGreaterThanOrEqual(0); // a saving: zero when native AEAD is no faster
  });

  it('creates the same resource through the gateway over HTTPS and with the SDK, every request accepted', () => {
    const g = results.gatewayInbound;
    expect(g).toBeDefined();
    for (const [name, arm] of [
      ['sdk', g?.sdk],
      ['gateway', g?.gateway],
    ] as const) {
      expect(arm?.failed, name).toBe(0);
      positive(arm?.requests, `${name} requests`);
      positive(arm?.perSec, `${name} perSec`);
      positive(arm?.latencyMs.count, `${name} latency samples`);
      for (const q of ['p50', 'p95', 'p99', 'max'] as const) positive(arm?.latencyMs[q], `${name} latency ${q}`);
      for (const k of ['natsServer', 'broker', 'client'] as const) positive(arm?.cpu[k], `${name} cpu.${k}`);
    }
    positive(g?.gateway.cpu.gateway, 'gateway process CPU while it served');
    for (const k of ['perSec', 'p50', 'p99'] as const) positive(g?.ratio[k], `ratio ${k}`);
    expect(stdout).toContain('| POST /[type] through the gateway (HTTPS) |');
  });

  it('prints the markdown summary with the machine it ran on', () => {
    expect(stdout).toContain('| broker-medium-f3-b1-sat |');
    expect(stdout).toContain(results.machine.cpuModel);
    positive(results.machine.nproc, 'nproc');
  });
});
