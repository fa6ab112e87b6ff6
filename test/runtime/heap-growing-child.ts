// Child of heap-growing.test.ts: applies the percent given (as `phi-broker up` does), then keeps ~30 MB live while
// making garbage that lives long enough to be promoted, and prints the old space's largest size in MB.
import { getHeapSpaceStatistics } from 'node:v8';
import { applyHeapGrowing } from '../../src/runtime/heap-growing.js';

const result = applyHeapGrowing(Number(process.argv[2]));
const oldSpace = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_size ?? 0;
const live = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `live-${i}`, a: [i, i + 1, i + 2] }));
const ring: unknown[] = new Array(400_000);
let peak = 0;
for (let i = 0; i < 8_000_000; i++) {
  ring[i % ring.length] = { i, s: `g-${i}`, a: [i, i] };
  if ((i & 4095) === 0) peak = Math.max(peak, oldSpace());
}
process.stdout.write(JSON.stringify({ result, peakOldMb: peak / 1e6, live: live.length }));
