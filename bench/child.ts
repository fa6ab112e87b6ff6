// A forked bench process and its IPC messages: wait for a message of a given type, send commands. A process that
// fails sends its error over IPC before it exits (failChild), and whatever waits on it is rejected with that error,
// not with a timeout or a bare exit code.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export type Message = { readonly type: string } & Record<string, unknown>;

export class Child {
  private readonly queue: Message[] = [];
  private waiters: { type: string; resolve: (m: Message) => void; reject: (e: Error) => void }[] = [];
  private exitError: Error | undefined;
  /** The error the process reported before exiting (failChild). */
  private failure: string | undefined;
  readonly proc: ChildProcess;

  constructor(
    readonly name: string,
    script: string,
    args: unknown,
    execArgv: readonly string[] = [],
  ) {
    this.proc = fork(fileURLToPath(new URL(script, import.meta.url)), [JSON.stringify(args)], {
      execArgv: [...execArgv],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.proc.on('message', (m: Message) => {
      if (m.type === 'error') this.failure = String(m['message']);
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w?.resolve(m);
      } else this.queue.push(m);
    });
    this.proc.on('exit', (code, signal) => {
      this.exitError = new Error(
        `bench process ${name} exited (code ${code}, signal ${signal})${this.failure === undefined ? '' : `: ${this.failure}`}`,
      );
      for (const w of this.waiters) w.reject(this.exitError);
      this.waiters = [];
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** The next message of `type` (queued or future); rejects when the process exits first or after timeoutMs. */
  next<T extends Message>(type: string, timeoutMs = 120_000): Promise<T> {
    const i = this.queue.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0] as T);
    if (this.exitError !== undefined) return Promise.reject(this.exitError);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `bench process ${this.name}: no '${type}' within ${timeoutMs} ms${this.failure === undefined ? '' : ` (it reported: ${this.failure})`}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  send(message: unknown): void {
    this.proc.send(message as never);
  }

  async request<T extends Message>(message: unknown, type: string, timeoutMs?: number): Promise<T> {
    const reply = this.next<T>(type, timeoutMs);
    this.send(message);
    return reply;
  }

  /** Resolves when the process has exited (e.g. after `stop`, so --cpu-prof can write its profile), or after timeoutMs. */
  exited(timeoutMs = 30_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Ends the process if it is still running (after a failed run). */
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/**
 * In a forked bench process: report `err` (its message and NATS or phi-broker code) to the parent over IPC and on
 * stderr (with the stack), then exit 1.
 */
export function failChild(who: string, err: unknown): void {
  const code = (err as { code?: unknown } | null)?.code;
  const message = `${err instanceof Error ? err.message : String(err)}${typeof code === 'string' ? ` [${code}]` : ''}`;
  process.stderr.write(`${who}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  if (process.send === undefined) process.exit(1);
  process.send({ type: 'error', message }, () => process.exit(1));
}
