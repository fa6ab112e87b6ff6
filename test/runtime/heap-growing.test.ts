import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { applyHeapGrowing } from '../../src/runtime/heap-growing.js';

const CHILD = fileURLToPath(new URL('./heap-growing-child.ts', import.meta.url));

interface ChildOut {
  readonly result: ReturnType<typeof applyHeapGrowing>;
  readonly peakOldMb: number;
}

async function child(percent: number, nodeFlags: readonly string[] = []): Promise<ChildOut> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...nodeFlags, '--import', 'tsx', CHILD, String(percent)],
    { env: { ...process.env, NODE_OPTIONS: '' }, maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout) as ChildOut;
}

describe('applyHeapGrowing', () => {
  it('leaves V8 alone when disabled or when node was given the flag', () => {
    const none = { execArgv: [], nodeOptions: undefined };
    expect(applyHeapGrowing(0, none)).toEqual({ skipped: 'disabled' });
    expect(applyHeapGrowing(100, { execArgv: ['--heap-growing-percent=50'], nodeOptions: undefined })).toEqual({
      skipped: 'explicit',
      where: 'execArgv',
    });
    expect(
      applyHeapGrowing(100, { execArgv: [], nodeOptions: '--max-semi-space-size=32 --heap_growing_percent=50' }),
    ).toEqual({
      skipped: 'explicit',
      where: 'NODE_OPTIONS',
    });
  });

  it('bounds the old generation of a running process; an explicit flag on the command line wins', async () => {
    const [tight, loose, explicit] = await Promise.all([
      child(10),
      child(300),
      child(10, ['--heap-growing-percent=300']),
    ]);
    expect(tight.result).toEqual({ applied: 10 });
    expect(loose.result).toEqual({ applied: 300 });
    expect(explicit.result).toEqual({ skipped: 'explicit', where: 'execArgv' });
    // ~30 MB live and ~20 MB of promoted garbage at any time: a factor of 1.1 keeps the old space near that, 4× lets
    // it grow to several times it (measured: ~120 against ~400 MB).
    expect(tight.peakOldMb).toBeLessThan(0.6 * loose.peakOldMb);
    expect(explicit.peakOldMb).toBeGreaterThan(tight.peakOldMb / 0.6);
  }, 120_000);
});
