// Test harness: a real nats-server (JetStream) per test file, on a free port with its own store dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';

export interface TestNats {
  readonly server: RunningNatsServer;
  readonly dir: string;
  connect(name?: string): Promise<NatsConnection>;
  stop(): Promise<void>;
}

export async function startTestNats(options: { maxPayload?: number } = {}): Promise<TestNats> {
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-test-'));
  const server = await startNatsServer({ dir: join(dir, 'nats'), ...(options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload }) });
  const connections: NatsConnection[] = [];
  return {
    server,
    dir,
    async connect(name = 'test') {
      const nc = await connect({ servers: server.url, name, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
      connections.push(nc);
      return nc;
    },
    async stop() {
      await Promise.allSettled(connections.map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
