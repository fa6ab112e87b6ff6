// The bench's publishers and subscribers, one forked process per role so they do not share an event loop
// with each other or with the broker. Roles:
//   sdk-pub   PhiClient.publish (seal + sign to the broker, JetStream ack, broker's signed receipt)
//   sdk-sub   PhiClient.subscribe('*') for each subscriber service (verify the broker's signature, decrypt)
//   raw-pub / raw-sub   baseline 1: plaintext JSON through JetStream (the passthrough process in between)
//   core-pub / core-sub baseline 3: the sealed ingest bytes over core NATS publish → subscribe
// The parent sends one `run` command and gets one `result` back; timestamps are absolute (load.ts).
import { headers as natsHeaders } from 'nats';
import { BROKER_ID } from '../src/wire/ids.js';
import { Keyring } from '../src/crypto/keyring.js';
import { readJwks, readServiceKeys } from '../src/runtime/key-files.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { sealEnvelope } from '../src/envelope/seal.js';
import { PhiClient } from '../src/sdk/client.js';
import { RAW, T0 } from './raw.js';
import { BENCH_IDENTITY, connectBench } from './tls.js';
import { serviceIdentity } from '../src/tls/identity.js';
import { drive, inWindow, now, type LoadShape, type LoadWindow } from './load.js';
import { SIZES, poolSize, resourceOf, type SizeName } from './resources.js';
import { failChild } from './child.js';

export type Role = 'sdk-pub' | 'sdk-sub' | 'raw-pub' | 'raw-sub' | 'core-pub' | 'core-sub';

export interface ClientArgs {
  readonly role: Role;
  readonly natsUrl: string;
  readonly keysDir: string;
  readonly size: SizeName;
  /** Subscriber service ids (sub roles). */
  readonly subscribers: readonly string[];
  /** The mTLS certificates (bench/tls.ts); plaintext without. */
  readonly tlsDir?: string;
}

export interface RunCommand {
  readonly cmd: 'run';
  readonly shape: LoadShape;
  readonly window: LoadWindow;
  /** How long the publisher waits after the window for its last operations to complete. */
  readonly graceMs: number;
}

export interface PubResult {
  readonly type: 'result';
  /** Operations started in the measured window. */
  readonly sent: number;
  /** Publishes the broker accepted (receipt) or JetStream acknowledged, completing in the window. */
  readonly completed: number;
  /** Publishes rejected (receipt) or refused by NATS. */
  readonly failed: number;
  /** Publishes still waiting for their receipt (or JetStream ack) when the run ended. */
  readonly unfinished: number;
  /** Open loop: publishes not started because too many were in flight (overload). */
  readonly shed: number;
  /** sdk-pub: message id → publish start time, for messages started in the window. */
  readonly starts: Record<string, number>;
}

export interface SubResult {
  readonly type: 'result';
  /** Deliveries received in the measured window (all subscribers). */
  readonly completed: number;
  /**
   * sdk-sub: [message id, receive time, the publisher's seal (the original's iat), the broker's seal (the copy's iat)]
   * per delivery; raw/core: end-to-end latencies (ms) of window messages.
   */
  readonly received: readonly (readonly [string, number, number, number])[];
  readonly latencies: readonly number[];
  readonly invalid: number;
}

// Each client connects as its own identity over mTLS (bench/tls.ts), or in plaintext with --no-tls.
async function sdkPub(args: ClientArgs, run: RunCommand): Promise<PubResult> {
  const { type, publisher } = SIZES[args.size];
  const nc = await connectBench(args.natsUrl, `bench ${publisher}`, serviceIdentity(publisher), args.tlsDir);
  const client = await PhiClient.connect({
    nc,
    service: publisher,
    keys: readServiceKeys(args.keysDir, publisher),
    peers: readJwks(args.keysDir),
    publishDeadlineMs: 120_000,
    insecure: args.tlsDir === undefined,
  });
  const pool = Array.from({ length: poolSize(args.size) }, (_, i) => resourceOf(args.size, i));
  void type;
  let sent = 0;
  let completed = 0;
  let failed = 0;
  let settled = 0;
  const starts: Record<string, number> = {};
  const { started, shed } = await drive(
    run.shape,
    run.window,
    async (i) => {
      const t0 = now();
      const r = await client.publish(pool[i % pool.length]);
      const t1 = now();
      // The client closed first (stored, no verdict yet; or never stored): counted as unfinished.
      if (r.status === 'stored' || r.status === 'not_stored') return;
      settled++;
      if (inWindow(t0, run.window)) {
        sent++;
        starts[r.id] = t0;
      }
      if (r.status !== 'accepted') failed++;
      else if (inWindow(t1, run.window)) completed++;
    },
    run.graceMs,
  );
  const unfinished = started - settled;
  await client.close();
  await nc.drain();
  return { type: 'result', sent, completed, failed, unfinished, shed, starts: { ...starts } };
}

async function sdkSub(args: ClientArgs, run: RunCommand, ready: () => void): Promise<SubResult> {
  const peers = readJwks(args.keysDir);
  const received: (readonly [string, number, number, number])[] = [];
  let completed = 0;
  const stops: (() => Promise<void>)[] = [];
  for (const service of args.subscribers) {
    const nc = await connectBench(args.natsUrl, `bench ${service}`, serviceIdentity(service), args.tlsDir);
    const client = await PhiClient.connect({
      nc,
      service,
      keys: readServiceKeys(args.keysDir, service),
      peers,
      insecure: args.tlsDir === undefined,
    });
    await client.subscribe('*', (d) => {
      const t = now();
      const p = d.provenance;
      received.push([p.messageId, t, p.publishedAt.getTime(), p.deliveredAt.getTime()]);
      total++;
      if (inWindow(t, run.window)) completed++;
    });
    stops.push(async () => {
      await client.close();
      await nc.drain();
    });
  }
  ready();
  await untilStop();
  for (const stop of stops) await stop();
  return { type: 'result', completed, received, latencies: [], invalid: 0 };
}

async function rawPub(args: ClientArgs, run: RunCommand): Promise<PubResult> {
  const nc = await connectBench(args.natsUrl, 'bench raw-pub', BENCH_IDENTITY, args.tlsDir);
  const js = nc.jetstream();
  const pool = Array.from({ length: poolSize(args.size) }, (_, i) =>
    Buffer.from(JSON.stringify(resourceOf(args.size, i))),
  );
  let sent = 0;
  let completed = 0;
  let failed = 0;
  let settled = 0;
  const { started, shed } = await drive(
    run.shape,
    run.window,
    async (i) => {
      const t0 = now();
      const h = natsHeaders();
      h.set(T0, String(t0));
      try {
        await js.publish(RAW.in, pool[i % pool.length], { headers: h });
        if (inWindow(t0, run.window)) sent++;
        if (inWindow(now(), run.window)) completed++;
      } catch {
        failed++;
      }
      settled++;
    },
    run.graceMs,
  );
  const unfinished = started - settled;
  await nc.close();
  return { type: 'result', sent, completed, failed, unfinished, shed, starts: {} };
}

async function rawSub(args: ClientArgs, run: RunCommand, ready: () => void): Promise<SubResult> {
  const nc = await connectBench(args.natsUrl, 'bench raw-sub', BENCH_IDENTITY, args.tlsDir);
  const js = nc.jetstream();
  const latencies: number[] = [];
  let completed = 0;
  let invalid = 0;
  const closers: (() => Promise<void>)[] = [];
  for (const s of args.subscribers) {
    const consumer = await js.consumers.get(RAW.outStream, `out-${s}`);
    const messages = await consumer.consume({ max_messages: 64 });
    const loop = (async () => {
      for await (const m of messages) {
        const t = now();
        try {
          JSON.parse(new TextDecoder().decode(m.data)); // what a subscriber does with plaintext at least
        } catch {
          invalid++;
        }
        const t0 = Number(m.headers?.get(T0));
        if (inWindow(t0, run.window)) latencies.push(t - t0);
        if (inWindow(t, run.window)) completed++;
        total++;
        m.ack();
      }
    })();
    closers.push(async () => {
      await messages.close();
      await loop;
    });
  }
  ready();
  await untilStop();
  for (const c of closers) await c();
  await nc.drain();
  return { type: 'result', completed, received: [], latencies, invalid };
}

/** The same bytes the SDK publishes to the broker (sealed and signed), built once. */
async function sealedPool(args: ClientArgs): Promise<Uint8Array[]> {
  await initCrypto();
  const { type, publisher } = SIZES[args.size];
  const keys = readServiceKeys(args.keysDir, publisher);
  const keyring = new Keyring(keys, readJwks(args.keysDir));
  const kek = keyring.kekFor(keyring.encryptionKeyOf(BROKER_ID).kid);
  return Array.from(
    { length: poolSize(args.size) },
    (_, i) =>
      sealEnvelope({
        id: `bench-${i}`,
        iss: publisher,
        iat: Date.now(),
        typ: type,
        resource: resourceOf(args.size, i),
        signer: keys.sign,
        recipients: [{ id: BROKER_ID, kek }],
      }).bytes,
  );
}

async function corePub(args: ClientArgs, run: RunCommand): Promise<PubResult> {
  const nc = await connectBench(args.natsUrl, 'bench core-pub', BENCH_IDENTITY, args.tlsDir);
  const pool = await sealedPool(args);
  let sent = 0;
  let completed = 0;
  // A closed loop for core NATS (no acknowledgement): batches of 64 publishes, each batch ending with a flush
  // (a PING/PONG round trip), so the publisher cannot outrun the server; `concurrency` batches in flight.
  const shape: LoadShape =
    run.shape.kind === 'closed'
      ? { kind: 'closed', concurrency: Math.max(1, Math.ceil(run.shape.concurrency / 64)) }
      : run.shape;
  const batch = run.shape.kind === 'closed' ? 64 : 1;
  const { shed } = await drive(
    shape,
    run.window,
    async (i) => {
      for (let k = 0; k < batch; k++) {
        const t0 = now();
        const h = natsHeaders();
        h.set(T0, String(t0));
        nc.publish(RAW.core, pool[(i * batch + k) % pool.length], { headers: h });
        if (inWindow(t0, run.window)) sent++;
      }
      await nc.flush();
      if (inWindow(now(), run.window)) completed += batch;
    },
    run.graceMs,
  );
  await nc.drain();
  return { type: 'result', sent, completed, failed: 0, unfinished: 0, shed, starts: {} };
}

async function coreSub(args: ClientArgs, run: RunCommand, ready: () => void): Promise<SubResult> {
  const nc = await connectBench(args.natsUrl, 'bench core-sub', BENCH_IDENTITY, args.tlsDir);
  const latencies: number[] = [];
  let completed = 0;
  for (let s = 0; s < args.subscribers.length; s++) {
    nc.subscribe(RAW.core, {
      callback: (_err, m) => {
        const t = now();
        const t0 = Number(m.headers?.get(T0));
        if (inWindow(t0, run.window)) latencies.push(t - t0);
        if (inWindow(t, run.window)) completed++;
        total++;
      },
    });
  }
  await nc.flush();
  ready();
  await untilStop();
  await nc.drain();
  return { type: 'result', completed, received: [], latencies, invalid: 0 };
}

/** Deliveries received so far (sub roles), for the parent's "caught up?" question. */
let total = 0;
let stopRequested: (() => void) | undefined;
const stopped = new Promise<void>((resolve) => {
  stopRequested = resolve;
});
function untilStop(): Promise<void> {
  return stopped;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ClientArgs;
  await initCrypto();
  const run = await new Promise<RunCommand>((resolve) => {
    process.on('message', (m: RunCommand | { cmd: 'stop' } | { cmd: 'count' }) => {
      if (m.cmd === 'run') resolve(m);
      else if (m.cmd === 'count') process.send?.({ type: 'count', total });
      else stopRequested?.();
    });
    process.send?.({ type: 'spawned' });
  });
  const ready = (): void => void process.send?.({ type: 'ready' });
  let result: PubResult | SubResult;
  switch (args.role) {
    case 'sdk-pub':
      ready();
      result = await sdkPub(args, run);
      break;
    case 'raw-pub':
      ready();
      result = await rawPub(args, run);
      break;
    case 'core-pub':
      ready();
      result = await corePub(args, run);
      break;
    case 'sdk-sub':
      result = await sdkSub(args, run, ready);
      break;
    case 'raw-sub':
      result = await rawSub(args, run, ready);
      break;
    case 'core-sub':
      result = await coreSub(args, run, ready);
      break;
  }
  process.send?.(result, () => process.exit(0));
}

main().catch((err: unknown) => failChild('bench client', err));
