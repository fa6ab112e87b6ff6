// Summarises a V8 sampling heap profile (.heapprofile: a tree of call frames, each with the bytes allocated there,
// written by bench/heap-probe.ts) by function, by area and by the innermost src/ function on the stack (where the
// project caused an allocation made inside a library or Node), in bytes per message when given a message count.
//   node dist/bench/heap-profile-summary.js <file.heapprofile> [top] [messages]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { area } from './profile-summary.js';

interface HeapNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly HeapNode[];
}

export interface HeapProfile {
  readonly head: HeapNode;
}

export interface HeapShare {
  readonly name: string;
  readonly bytes: number;
}

function frameName(f: HeapNode['callFrame']): string {
  const file = f.url.replace(/^.*\/(node_modules\/|dist\/)/, '$1');
  return `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`;
}

function isSrc(url: string): boolean {
  return /\/(?:dist\/)?src\//.test(url) && !url.includes('node_modules');
}

export function summariseHeap(profile: HeapProfile): {
  total: number;
  byFunction: HeapShare[];
  byArea: HeapShare[];
  bySrcCaller: HeapShare[];
} {
  const fn = new Map<string, number>();
  const ar = new Map<string, number>();
  const caller = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v);
  let total = 0;
  // Iterative walk: a deep stack must not overflow ours.
  const stack: { node: HeapNode; src: string | undefined }[] = [{ node: profile.head, src: undefined }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { node } = item;
    const { url, functionName } = node.callFrame;
    const src = isSrc(url) ? frameName(node.callFrame) : item.src;
    if (node.selfSize > 0) {
      total += node.selfSize;
      add(fn, frameName(node.callFrame), node.selfSize);
      add(ar, area(url, functionName), node.selfSize);
      add(caller, src ?? '(no src/ frame)', node.selfSize);
    }
    for (const child of node.children) stack.push({ node: child, src });
  }
  const sorted = (m: Map<string, number>): HeapShare[] =>
    [...m.entries()].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
  return { total, byFunction: sorted(fn), byArea: sorted(ar), bySrcCaller: sorted(caller) };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/heap-profile-summary.js <file.heapprofile> [top] [messages]\n');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  const messages = Number(process.argv[4] ?? 0);
  const s = summariseHeap(JSON.parse(readFileSync(file, 'utf8')) as HeapProfile);
  const per = messages > 0 ? messages : 1;
  const unit = messages > 0 ? 'B per message' : 'B';
  const fmt = (b: number): string => Math.round(b / per).toLocaleString('en-US');
  const share = (b: number): string => `${((b / s.total) * 100).toFixed(1)} %`;
  const table = (title: string, rows: HeapShare[]): void => {
    process.stdout.write(`\n${title} (${unit}, share)\n`);
    for (const r of rows.slice(0, top))
      process.stdout.write(`  ${fmt(r.bytes).padStart(9)}  ${share(r.bytes).padStart(7)}  ${r.name}\n`);
  };
  process.stdout.write(`allocated ${fmt(s.total)} ${unit}\n`);
  table('by area', s.byArea);
  table('by innermost src/ function on the stack', s.bySrcCaller);
  table('by function', s.byFunction);
}
