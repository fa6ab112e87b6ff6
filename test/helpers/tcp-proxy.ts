// Test harness: a TCP proxy on loopback between NATS clients and a real nats-server, so a test can make the network
// fail on cue: `cut()` drops every connection (the client sees a disconnect and reconnects), `refuse` closes new
// connections at once (an outage as long as the test wants), `dropReplies` swallows the server's bytes to the clients
// (a PubAck lost on the way back while the server stored the message). Bytes pass through unchanged otherwise.
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far (a reconnect is one more). */
  readonly accepted: number;
  /** Closes new connections at once while true. */
  refuse: boolean;
  /** Discards the server's bytes to the clients while true. */
  dropReplies: boolean;
  /** Destroys every open connection, both sides. */
  cut(): void;
  /** Resolves once `accepted` reaches `n` with the last connection still open. */
  untilAccepted(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const watchers = new Set<() => void>();
  let accepted = 0;
  const state = { refuse: false, dropReplies: false };
  const server: Server = createServer((client) => {
    if (state.refuse) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = tcpConnect(target.port, target.host);
    open.add(client);
    open.add(upstream);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (b: Buffer) => upstream.write(b));
    upstream.on('data', (b: Buffer) => {
      if (!state.dropReplies) client.write(b);
    });
    for (const w of [...watchers]) w();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get refuse() {
      return state.refuse;
    },
    set refuse(v: boolean) {
      state.refuse = v;
    },
    get dropReplies() {
      return state.dropReplies;
    },
    set dropReplies(v: boolean) {
      state.dropReplies = v;
    },
    cut() {
      for (const s of [...open]) s.destroy();
      open.clear();
    },
    untilAccepted(n, timeoutMs = 15_000) {
      if (accepted >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`proxy accepted ${accepted} of ${n} connections`));
        }, timeoutMs);
        const check = (): void => {
          if (accepted < n) return;
          clearTimeout(timer);
          watchers.delete(check);
          resolve();
        };
        watchers.add(check);
      });
    },
    async close() {
      for (const s of [...open]) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
