// bench/heap-profile-summary.ts on a handmade sampling heap profile, and bench/heap-probe.ts's collection counts.
import { constants } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { summariseHeap, type HeapProfile } from '../../bench/heap-profile-summary.js';
import { countGc, emptyCounts } from '../../bench/heap-probe.js';

const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });

// (root) → handle (src/broker) → publish (nats) → set (builtin); handle also allocates itself; a Node frame with no
// src/ frame above it.
const profile: HeapProfile = {
  head: {
    callFrame: frame('(root)', ''),
    selfSize: 0,
    children: [
      {
        callFrame: frame('handle', 'file:///w/dist/src/broker/broker.js', 9),
        selfSize: 100,
        children: [
          {
            callFrame: frame('publish', 'file:///w/node_modules/nats/lib/protocol.js', 4),
            selfSize: 40,
            children: [{ callFrame: frame('set', ''), selfSize: 10, children: [] }],
          },
        ],
      },
      { callFrame: frame('processTicks', 'node:internal/process/task_queues'), selfSize: 50, children: [] },
    ],
  },
};

describe('heap profile summary', () => {
  it('sums bytes by function, by area and by the innermost src/ function on the stack', () => {
    const s = summariseHeap(profile);
    expect(s.total).toBe(200);
    expect(s.byFunction).toEqual([
      { name: 'handle dist/src/broker/broker.js:10', bytes: 100 },
      { name: 'processTicks node:internal/process/task_queues:1', bytes: 50 },
      { name: 'publish node_modules/nats/lib/protocol.js:5', bytes: 40 },
      { name: 'set :1', bytes: 10 },
    ]);
    expect(s.byArea).toEqual([
      { name: 'src/broker', bytes: 100 },
      { name: 'node:internal/process/task_queues', bytes: 50 },
      { name: 'nats', bytes: 40 },
      { name: '(native/builtin)', bytes: 10 },
    ]);
    expect(s.bySrcCaller).toEqual([
      { name: 'handle dist/src/broker/broker.js:10', bytes: 150 },
      { name: '(no src/ frame)', bytes: 50 },
    ]);
  });
});

describe('heap probe collection counts', () => {
  it('counts scavenges and mark-compacts apart, with their longest pauses and those over 5 ms', () => {
    const c = emptyCounts();
    countGc(c, constants.NODE_PERFORMANCE_GC_MINOR, 2);
    countGc(c, constants.NODE_PERFORMANCE_GC_MINOR, 7);
    countGc(c, constants.NODE_PERFORMANCE_GC_MAJOR, 12);
    countGc(c, constants.NODE_PERFORMANCE_GC_INCREMENTAL, 30);
    expect(c).toEqual({
      windowMs: 0,
      minor: 2,
      minorMs: 9,
      minorOver5Ms: 1,
      minorMaxMs: 7,
      major: 1,
      majorMs: 12,
      majorMaxMs: 12,
    });
  });
});
