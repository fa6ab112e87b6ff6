// Summarises a V8 CPU profile (.cpuprofile, written by `node --cpu-prof`; the bench passes it to the broker
// processes with `--cpu-prof <dir>`): self time by function and by area, as shares of all sampled time.
//   node dist/bench/profile-summary.js <file.cpuprofile> [top] [skip-seconds]
// skip-seconds leaves out the start (module loading, catalog compilation) to show the steady state.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
}

/** Where a frame's time goes, by source: the project's own modules, its libraries, Node and V8. */
export function area(url: string, name: string): string {
  if (name === '(garbage collector)') return 'gc';
  if (name === '(idle)' || name === '(program)') return name.slice(1, -1);
  const src = /\/(?:dist\/)?src\/([a-z]+)\//.exec(url);
  if (src !== null && !url.includes('node_modules')) return `src/${src[1]}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return pkg[1] as string;
  if (url.startsWith('node:')) return url;
  return url === '' ? '(native/builtin)' : url;
}

export interface ProfileShare {
  readonly name: string;
  readonly share: number;
}

export function summarise(
  profile: CpuProfile,
  skipSeconds = 0,
): { byFunction: ProfileShare[]; byArea: ProfileShare[]; busyShare: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const ar = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let t = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t < skipSeconds * 1e6) return;
    const node = byId.get(id);
    if (node === undefined) return;
    const { functionName, url, lineNumber } = node.callFrame;
    total += dt;
    if (functionName === '(idle)') idle += dt;
    const file = url.replace(/^.*\/(node_modules\/|dist\/)/, '$1');
    const key = `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + dt);
    const a = area(url, functionName);
    ar.set(a, (ar.get(a) ?? 0) + dt);
  });
  const sorted = (m: Map<string, number>): ProfileShare[] =>
    [...m.entries()].map(([name, t]) => ({ name, share: t / total })).sort((a, b) => b.share - a.share);
  return { byFunction: sorted(fn), byArea: sorted(ar), busyShare: total > 0 ? 1 - idle / total : 0 };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(process.argv[4] ?? 0));
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  process.stdout.write(`busy ${pct(s.busyShare)} of sampled time\n\nby area (self time, share of sampled time)\n`);
  for (const a of s.byArea.slice(0, top)) process.stdout.write(`  ${pct(a.share).padStart(7)}  ${a.name}\n`);
  process.stdout.write('\nby function\n');
  for (const f of s.byFunction.slice(0, top)) process.stdout.write(`  ${pct(f.share).padStart(7)}  ${f.name}\n`);
}
