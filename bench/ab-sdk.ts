// Before/after of the SDK's own CPU per message on a busy machine: two builds' PhiClient (src/sdk/client.ts)
// in one process, alternating rounds, so other load hits both alike. One nats-server and one bench broker
// process (this checkout's bench/broker-process.ts, fan-out 3) serve both; what is timed is this process's
// CPU (process.cpuUsage) only:
//   publish    N Patients through build X's PhiClient.publish, 256 in flight (seal, sign, JetStream ack, the
//              broker's signed receipt verified and decoded), over N;
//   subscribe  build X's three subscriber clients (sub1..sub3, as the bench's sdk-sub process) subscribe,
//              verify, open and acknowledge the 3 N deliveries that round's publishes produced, then stop;
//              over 3 N. They take a backlog (the broker finished before they start), so deliveries arrive in
//              full pull batches: acks written together gain more here than at the bench's trickle.
// Rounds alternate which build goes first. Prints each round and the medians of each build's µs and of the per-round ratio B/A.
//   node dist/bench/ab-sdk.js <root-of-build-A> [<root-of-build-B> = this checkout] [--messages N] [--rounds R]
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type * as ClientModule from '../src/sdk/client.js';
import { connectNats } from '../src/runtime/data-dir.js';
import { readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { startNatsServer } from '../src/nats/server.js';
import { abArgs, HERE } from './ab-args.js';
import { fanoutThree } from './ab-fixture.js';
import { median } from './repeat.js';
import { patient } from './resources.js';

const SUBSCRIBERS = ['sub1', 'sub2', 'sub3'] as const;
const IN_FLIGHT = 256;

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

interface Side {
  readonly label: string;
  /**
   * A publisher connected for one round and closed after it: both builds publish as `registration`, and a client
   * connected through the other build's round would receive (and, in a build that checks every receipt, verify) its
   * receipts on this process's CPU.
   */
  readonly publisher: () => Promise<ClientModule.PhiClient>;
  readonly subscribers: readonly ClientModule.PhiClient[];
}

async function main(): Promise<void> {
  const { rootA, rootB, messages: n, rounds } = abArgs('ab-sdk', process.argv.slice(2), { messages: 600, rounds: 6 });
  await initCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-ab-sdk-'));
  const silent = pino({ level: 'silent' });
  try {
    const { keysDir, subjectsDir, profilesDir } = fanoutThree(dir);
    const peers = readJwks(keysDir);
    const nats = await startNatsServer({ dir: join(dir, 'nats'), maxPayload: 4 * 1024 * 1024 });
    const brokerArgs = {
      natsUrl: nats.url,
      subjectsDir,
      profilesDir,
      keysDir,
      dataDir: join(dir, 'broker'),
      logFile: join(dir, 'broker.log'),
    };
    const broker = fork(join(HERE, 'dist', 'bench', 'broker-process.js'), [JSON.stringify(brokerArgs)], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const connections: { close(): Promise<void> }[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        broker.once('message', () => resolve());
        broker.once('exit', (code) => reject(new Error(`bench broker exited (${code})`)));
      });
      const side = async (root: string, label: string): Promise<Side> => {
        const m = (await import(join(root, 'dist', 'src', 'sdk', 'client.js'))) as typeof ClientModule;
        await (
          (await import(join(root, 'dist', 'src', 'crypto', 'sodium.js'))) as { initCrypto(): Promise<void> }
        ).initCrypto();
        const client = async (service: string): Promise<ClientModule.PhiClient> => {
          const nc = await connectNats(nats.url, `ab-sdk ${label} ${service}`);
          connections.push(nc);
          return m.PhiClient.connect({
            nc,
            service,
            keys: readServiceKeys(keysDir, service),
            peers,
            insecure: true,
            logger: silent,
            // Each build reads the option it knows: receiptTimeoutMs before publish deadlines, publishDeadlineMs after.
            ...({ receiptTimeoutMs: 120_000, publishDeadlineMs: 120_000 } as object),
          });
        };
        return {
          label,
          publisher: () => client('registration'),
          subscribers: await Promise.all(SUBSCRIBERS.map(client)),
        };
      };
      const a = await side(rootA, 'A');
      const b = await side(rootB, 'B');

      let next = 0;
      const publishAll = async (s: Side): Promise<number> => {
        const publisher = await s.publisher();
        const c0 = cpuUs();
        let i = 0;
        const worker = async (): Promise<void> => {
          while (i < n) {
            i++;
            const r = await publisher.publish(patient(next++ % 256));
            if (r.status !== 'accepted') throw new Error(`${s.label}: publish ${r.status}`);
          }
        };
        await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
        const us = (cpuUs() - c0) / n;
        await publisher.close();
        await connections.pop()?.close();
        return us;
      };
      const receiveAll = async (s: Side): Promise<number> => {
        const c0 = cpuUs();
        let left = n * SUBSCRIBERS.length;
        let done: () => void = () => undefined;
        const all = new Promise<void>((resolve) => (done = resolve));
        const subs = await Promise.all(
          s.subscribers.map((c) =>
            c.subscribe('Patient', () => {
              if (--left === 0) done();
            }),
          ),
        );
        await all;
        for (const sub of subs) await sub.stop();
        return (cpuUs() - c0) / (n * SUBSCRIBERS.length);
      };
      const round = async (s: Side): Promise<{ pub: number; sub: number }> => ({
        pub: await publishAll(s),
        sub: await receiveAll(s),
      });

      await round(a); // warm-up: JIT, key objects, consumers bound
      await round(b);
      const pa: number[] = [];
      const pb: number[] = [];
      const sa: number[] = [];
      const sb: number[] = [];
      const pr: number[] = [];
      const sr: number[] = [];
      for (let r = 0; r < rounds; r++) {
        // A then B in even rounds, B then A in odd ones: neither build always runs first after the other's work.
        const ra = r % 2 === 0 ? await round(a) : undefined;
        const rb = await round(b);
        const rA = ra ?? (await round(a));
        pa.push(rA.pub);
        pb.push(rb.pub);
        sa.push(rA.sub);
        sb.push(rb.sub);
        pr.push(rb.pub / rA.pub);
        sr.push(rb.sub / rA.sub);
        process.stdout.write(
          `round ${r + 1}: publish A ${rA.pub.toFixed(0)} B ${rb.pub.toFixed(0)} µs/msg; subscribe A ${rA.sub.toFixed(0)} B ${rb.sub.toFixed(0)} µs/delivery\n`,
        );
      }
      process.stdout.write(
        `SDK publish (Patient, ${n} per round, ${IN_FLIGHT} in flight): A ${median(pa).toFixed(0)}, B ${median(pb).toFixed(0)} µs/msg, B/A ${median(pr).toFixed(3)}\n`,
      );
      process.stdout.write(
        `SDK subscribe (3 subscribers, ${n * SUBSCRIBERS.length} deliveries per round): A ${median(sa).toFixed(0)}, B ${median(sb).toFixed(0)} µs/delivery, B/A ${median(sr).toFixed(3)}\n`,
      );
      for (const c of [a, b]) for (const client of c.subscribers) await client.close();
    } finally {
      for (const nc of connections) await nc.close().catch(() => undefined);
      broker.send({ cmd: 'stop' });
      await new Promise((r) => setTimeout(r, 2_000));
      broker.kill('SIGKILL');
      await nats.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`ab-sdk: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
