// The broker's /healthz, /readyz and /metrics over node:http (three GET routes need no framework), bound to 127.0.0.1
// by default; bodies carry names, fixed reasons and codes only (docs/health-and-metrics.md).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../log/log.js';
import type { Health } from './health.js';

export interface HealthServerOptions {
  readonly host: string;
  /** 0: any free port (tests). */
  readonly port: number;
  readonly health: Health;
  readonly registry: Registry;
  readonly logger: Logger;
}

export class HealthServer {
  private constructor(
    private readonly server: Server,
    /** The port it listens on. */
    readonly port: number,
    readonly host: string,
  ) {}

  static async start(opts: HealthServerOptions): Promise<HealthServer> {
    const server = createServer((req, res) => {
      handle(req, res, opts).catch((err: unknown) => {
        opts.logger.error({ event: 'health.http.failed', name: (err as Error).name }, 'health endpoint failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
    // Probes are short; a stuck client does not hold a socket for long.
    server.requestTimeout = 10_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    opts.logger.info({ event: 'health.listening', host: opts.host, port }, 'health and metrics endpoints listening');
    return new HealthServer(server, port, opts.host);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: HealthServerOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
    res.end('method not allowed\n');
    return;
  }
  switch (path) {
    case '/healthz':
      send(res, 200, 'application/json', '{"status":"ok"}\n');
      return;
    case '/readyz': {
      const report = opts.health.report();
      const body = {
        status: report.ready ? 'ready' : 'not ready',
        failing: report.failing,
        conditions: report.conditions,
      };
      send(res, report.ready ? 200 : 503, 'application/json', `${JSON.stringify(body)}\n`);
      return;
    }
    case '/metrics':
      send(res, 200, opts.registry.contentType, await opts.registry.metrics());
      return;
    default:
      send(res, 404, 'text/plain', 'not found\n');
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}
