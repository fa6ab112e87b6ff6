// Before/after of the whole broker on a busy machine: the broker process's CPU per message while it works
// off a queue, with nothing else of the bench running beside it. For each build in turn (alternating, for
// several rounds): a fresh nats-server, that build's bench broker process (bench/broker-process.ts: the
// Broker class `phi-broker up` runs, fan-out 3), then N Patients — sealed and signed beforehand by this
// process — published to PHI_INGEST as fast as JetStream acks them; the broker's utime + stime
// (/proc/<pid>/stat) from just before the first publish until it has accepted all N, over N. No subscribers
// run (deliveries stay in PHI_DELIVER), so other processes steal less of the broker's batching than in
// `npm run bench`; what this measures is the broker's own work per message (everything `handle` does).
//   node dist/bench/drain.js <root-of-build-A> [<root-of-build-B> = this checkout] [--messages N] [--rounds R]
// A build root is a checkout with `npm run build` done (dist/src and dist/bench), e.g. a copy of main.
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headers as natsHeaders } from 'nats';
import { BROKER_ID } from '../src/wire/ids.js';
import { connectNats } from '../src/runtime/data-dir.js';
import { Keyring } from '../src/crypto/keyring.js';
import { readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { sealEnvelope } from '../src/envelope/seal.js';
import { HEADERS, subjects } from '../src/wire/names.js';
import { startNatsServer } from '../src/nats/server.js';
import { abArgs } from './ab-args.js';
import { fanoutThree } from './ab-fixture.js';
import { median } from './repeat.js';
import { sample } from './proc.js';
import { patient } from './resources.js';

type FromBroker = { type: 'ready' } | { type: 'stats'; accepted: number; rejected: number } | { type: 'stopped' };

async function main(): Promise<void> {
  const { rootA, rootB, messages: n, rounds } = abArgs('drain', process.argv.slice(2), { messages: 1500, rounds: 3 });
  await initCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-drain-'));
  try {
    const { keysDir, subjectsDir, profilesDir } = fanoutThree(dir);
    const pubKeys = readServiceKeys(keysDir, 'registration');
    const pubRing = new Keyring(pubKeys, readJwks(keysDir));
    const kek = pubRing.kekFor(pubRing.encryptionKeyOf(BROKER_ID).kid);
    const subject = subjects.ingest('registration', 'Patient');

    const once = async (root: string, label: string): Promise<number> => {
      const messages = Array.from({ length: n }, (_, i) => {
        const id = randomUUID();
        return {
          id,
          ...sealEnvelope({
            id,
            iss: 'registration',
            iat: Date.now(),
            typ: 'Patient',
            resource: patient(i % 256),
            signer: pubKeys.sign,
            recipients: [{ id: BROKER_ID, kek }],
          }),
        };
      });
      const run = join(dir, `${label}-${Date.now()}`);
      const nats = await startNatsServer({ dir: join(run, 'nats'), maxPayload: 4 * 1024 * 1024 });
      const args = {
        natsUrl: nats.url,
        subjectsDir,
        profilesDir,
        keysDir,
        dataDir: join(run, 'broker'),
        logFile: join(run, 'broker.log'),
      };
      const child = fork(join(root, 'dist', 'bench', 'broker-process.js'), [JSON.stringify(args)], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      const waiting = new Map<string, (m: FromBroker) => void>();
      child.on('message', (m: FromBroker) => {
        const w = waiting.get(m.type);
        waiting.delete(m.type);
        w?.(m);
      });
      const next = <T extends FromBroker>(type: T['type']): Promise<T> =>
        new Promise((resolve) => waiting.set(type, resolve as (m: FromBroker) => void));
      const nc = await connectNats(nats.url, 'drain publisher');
      try {
        await next('ready');
        const pid = child.pid ?? -1;
        const before = sample(pid);
        const js = nc.jetstream();
        for (let i = 0; i < n; i += 64) {
          await Promise.all(
            messages.slice(i, i + 64).map((m) => {
              const h = natsHeaders();
              h.set(HEADERS.signature, m.sig);
              return js.publish(subject, m.bytes, { msgID: m.id, headers: h });
            }),
          );
        }
        for (;;) {
          const stats = next<Extract<FromBroker, { type: 'stats' }>>('stats');
          child.send({ cmd: 'stats' });
          const s = await stats;
          if (s.rejected > 0) throw new Error(`${label}: ${s.rejected} rejected`);
          if (s.accepted >= n) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        const after = sample(pid);
        if (before === undefined || after === undefined) throw new Error(`${label}: the broker process is gone`);
        const us = ((after.cpuSeconds - before.cpuSeconds) * 1e6) / n;
        process.stdout.write(`${label}: ${us.toFixed(0)} CPU µs/msg\n`);
        return us;
      } finally {
        const stopped = next('stopped');
        child.send({ cmd: 'stop' });
        await Promise.race([stopped, new Promise((r) => setTimeout(r, 10_000))]);
        child.kill('SIGKILL');
        await nc.close();
        await nats.stop();
      }
    };

    const a: number[] = [];
    const b: number[] = [];
    const ratio: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const ua = await once(rootA, `A round ${r + 1}`);
      const ub = await once(rootB, `B round ${r + 1}`);
      a.push(ua);
      b.push(ub);
      ratio.push(ub / ua);
    }
    process.stdout.write(
      `broker CPU µs/msg (Patient, fan-out 3, ${n} messages): A ${median(a).toFixed(0)}, B ${median(b).toFixed(0)}, B/A ${median(ratio).toFixed(3)} (medians of ${rounds} rounds)\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`drain: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
