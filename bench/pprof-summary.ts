// Summarises a Go pprof CPU profile (nats-server's, written by `--cpu-prof <dir>` as <run>-nats.pprof): the top
// functions by self and by cumulative time, as shares of all sampled time (what `go tool pprof -top` prints).
//   node dist/bench/pprof-summary.js <file.pprof> [top]
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { Profile } from 'pprof-format';

export interface PprofShares {
  readonly seconds: number;
  readonly self: readonly { name: string; share: number }[];
  readonly cumulative: readonly { name: string; share: number }[];
}

export function summarisePprof(bytes: Uint8Array, top: number): PprofShares {
  const p = Profile.decode(bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes);
  const text = (i: number | bigint): string => p.stringTable.strings[Number(i)] ?? '?';
  const fn = new Map(p.function.map((f) => [Number(f.id), text(f.name)]));
  const frames = new Map(p.location.map((l) => [Number(l.id), l.line.map((x) => fn.get(Number(x.functionId)) ?? '?')]));
  const cpu = p.sampleType.length - 1; // [samples/count, cpu/nanoseconds]
  const self = new Map<string, number>();
  const cum = new Map<string, number>();
  let total = 0;
  for (const s of p.sample) {
    const v = Number(s.value[cpu]);
    total += v;
    const stack = s.locationId.flatMap((id) => frames.get(Number(id)) ?? []);
    const leaf = stack[0] ?? '?';
    self.set(leaf, (self.get(leaf) ?? 0) + v);
    for (const f of new Set(stack)) cum.set(f, (cum.get(f) ?? 0) + v);
  }
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, v]) => ({ name, share: total === 0 ? 0 : v / total }));
  return { seconds: total / 1e9, self: rank(self), cumulative: rank(cum) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (file === undefined) throw new TypeError('usage: pprof-summary.js <file.pprof> [top]');
  const s = summarisePprof(readFileSync(file), Number(top ?? 30));
  const rows = (xs: PprofShares['self']) => xs.map((x) => `${(100 * x.share).toFixed(1).padStart(6)} %  ${x.name}`);
  process.stdout.write(
    [
      `${s.seconds.toFixed(2)} s of CPU sampled`,
      '',
      'self:',
      ...rows(s.self),
      '',
      'cumulative:',
      ...rows(s.cumulative),
      '',
    ].join('\n'),
  );
}
