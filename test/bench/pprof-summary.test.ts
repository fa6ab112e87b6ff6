// nats-server's CPU profile as the bench takes it with --cpu-prof (nats-server --profile, Go pprof over HTTP) and
// bench/pprof-summary.ts reads it: a profile of a server under a publishing load names nats-server's own functions.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { summarisePprof } from '../../bench/pprof-summary.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';

const dir = mkdtempSync(join(tmpdir(), 'phi-bench-pprof-'));
let server: RunningNatsServer | undefined;

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('nats-server CPU profile (bench --cpu-prof)', () => {
  it('profiles a loaded server and summarises it by function, self and cumulative', async () => {
    const port = await freePort();
    server = await startNatsServer({ dir, profilePort: port });
    const nc = await connect({ servers: server.url });
    const profile = fetch(`http://127.0.0.1:${port}/debug/pprof/profile?seconds=1`).then(async (r) => {
      expect(r.status).toBe(200);
      return new Uint8Array(await r.arrayBuffer());
    });
    // Load until the profile is in: core NATS publishes to a subscriber, flushed in rounds.
    let done = false;
    void profile.finally(() => (done = true));
    const sub = nc.subscribe('load.>');
    const payload = new Uint8Array(512);
    for (let round = 0; !done && round < 10_000; round++) {
      for (let i = 0; i < 200; i++) nc.publish(`load.${i % 8}`, payload);
      await nc.flush();
    }
    const s = summarisePprof(await profile, 50);
    sub.unsubscribe();
    await nc.close();
    expect(s.seconds).toBeGreaterThan(0);
    expect(s.self.length).toBeGreaterThan(0);
    const shares = s.self.reduce((a, x) => a + x.share, 0);
    expect(shares).toBeGreaterThan(0);
    expect(shares).toBeLessThanOrEqual(1 + 1e-9);
    expect(s.cumulative.some((x) => x.name.startsWith('github.com/nats-io/nats-server/'))).toBe(true);
  });
});
