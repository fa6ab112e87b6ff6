// Runs the compiled `phi-broker` command (dist/src/cli/main.js, built by `npm test` / `npm run build`) as a
// child process, the way a user runs it: arguments, stdin, environment, exit code, stdout and stderr.
// `startUp` keeps a `phi-broker up` running and resolves once it has printed its `ready` line.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** Why the CLI tests cannot run, or undefined when they can. */
export const NOT_BUILT = existsSync(CLI) ? undefined : `${CLI} is missing: run \`npm run build\` first`;

/** Distinctive synthetic PHI from examples/*.json and the inputs these tests make: none may reach a log. */
export const EXAMPLE_PHI = [
  'Quillfeather',
  'Marisol',
  '555-0142-7731',
  '555-0199-7731',
  'MRN-7731-DEMO',
  '999-41-7731',
  '42 Lantern Row',
  'Brightwater',
  'marisol.quillfeather@example.org',
  '1984-07-19',
  'Ilsa Northgate',
  'Ravensloe',
  'Tobin',
  'Toby',
] as const;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Written to stdin, which is then closed (stdin is always closed, so `-` never waits). */
  readonly input?: string;
  /** Added to a copy of this process's environment without NATS_URL / PHI_BROKER_* (tests say what they set). */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

function childEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NATS_URL' || k.startsWith('PHI_BROKER_')) continue;
    env[k] = v;
  }
  // `up` serves /healthz, /readyz and /metrics on a fixed default port; tests run several at once, so any free one.
  return { ...env, PHI_BROKER_HEALTH_PORT: '0', ...extra };
}

function spawnCli(args: readonly string[], opts: CliOptions): ChildProcess {
  if (NOT_BUILT !== undefined) throw new Error(NOT_BUILT);
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: childEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin?.end(opts.input ?? '');
  return child;
}

const running = new Set<ChildProcess>();

function collect(child: ChildProcess): {
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
} {
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    // 'close' (not 'exit'): stdout and stderr are fully read by then.
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  return { stdout: () => out, stderr: () => err, exited };
}

/** Runs `phi-broker <args>` to completion; rejects (after killing it) when it outlives `timeoutMs`. */
export async function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, opts);
  const io = collect(child);
  const timeoutMs = opts.timeoutMs ?? 45_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `phi-broker ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout:\n${io.stdout()}\nstderr:\n${io.stderr()}`,
        ),
      );
    }, timeoutMs);
  });
  try {
    const { code, signal } = await Promise.race([io.exited, timedOut]);
    return { code, signal, stdout: io.stdout(), stderr: io.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

export interface UpProcess {
  readonly pid: number;
  /** The `phi-broker ready: …` line. */
  readonly readyLine: string;
  stdout(): string;
  stderr(): string;
  /** Sends `signal` and resolves with the exit status and everything printed. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
  /** Resolves with the exit status and everything printed once it exits on its own (no signal sent). */
  exited(): Promise<CliResult>;
}

/** Starts `phi-broker up <args>` and resolves once it prints its ready line (rejects if it exits first). */
export function startUp(args: readonly string[], opts: CliOptions = {}): Promise<UpProcess> {
  return startCli(['up', ...args], opts);
}

/** Starts a long-running `phi-broker <command> <args>` (`up`, `gateway`) and resolves once it prints its ready line. */
export async function startCli(args: readonly string[], opts: CliOptions = {}): Promise<UpProcess> {
  const command = `phi-broker ${args[0] ?? ''}`;
  const child = spawnCli(args, opts);
  const io = collect(child);
  const timeoutMs = opts.timeoutMs ?? 45_000;
  const readyLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `${command} printed no ready line within ${timeoutMs} ms\nstdout:\n${io.stdout()}\nstderr:\n${io.stderr()}`,
        ),
      );
    }, timeoutMs);
    const check = (): void => {
      const line = io
        .stdout()
        .split('\n')
        .find((l) => /\bready\b/.test(l));
      if (line === undefined) return;
      clearTimeout(timer);
      child.stdout?.off('data', check);
      resolve(line);
    };
    child.stdout?.on('data', check);
    void io.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(
          `${command} exited (code ${code}, signal ${signal}) before ready\nstdout:\n${io.stdout()}\nstderr:\n${io.stderr()}`,
        ),
      );
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${command} has no pid`);
  return {
    pid,
    readyLine,
    stdout: io.stdout,
    stderr: io.stderr,
    async stop(signal = 'SIGINT') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const { code, signal: sig } = await io.exited;
      return { code, signal: sig, stdout: io.stdout(), stderr: io.stderr() };
    },
    async exited() {
      const { code, signal: sig } = await io.exited;
      return { code, signal: sig, stdout: io.stdout(), stderr: io.stderr() };
    },
  };
}

/**
 * Stops every CLI process a test started and left running (e.g. after a failed assertion): SIGTERM first, so
 * an `up` stops its embedded nats-server too, then SIGKILL after `graceMs`.
 */
export async function killLeftovers(graceMs = 10_000): Promise<void> {
  await Promise.all(
    [...running].map(async (child) => {
      const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await closed;
      clearTimeout(timer);
    }),
  );
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Without PHI_BROKER_NATS_TLS_DIR the CLI talks to NATS in plaintext (`insecure: true`), so the SDK's insecure-transport
 * process warning is the one thing allowed on stderr; it must be there (the SDK says so loudly).
 */
export function stderrBesidesInsecureWarning(stderr: string): string {
  const warning =
    /^\(node:\d+\) \[PHI_BROKER_INSECURE_TRANSPORT\] Warning: INSECURE: .*\n(?:\(Use `node --trace-warnings.*\n)?/m;
  expect(stderr).toMatch(warning);
  return stderr.replace(warning, '');
}
