// Structured logging (pino). Log lines carry ids, codes, subjects' service/type tokens and element paths
// only — never a value from a resource. Redaction of every field that could hold one is the second guard.
import { pino, type DestinationStream, type Logger } from 'pino';

/** Field names that must never reach a log line with their content. */
export const REDACT_PATHS = [
  'resource', '*.resource', 'body', '*.body', 'data', '*.data', 'bytes', '*.bytes', 'raw', '*.raw',
  'secretKey', '*.secretKey', 'd', '*.d', 'key', '*.key', 'kek', '*.kek', 'headers', '*.headers',
  'value', '*.value', 'patient', '*.patient', 'err.cause',
  // Audit facts (src/audit/facts.ts) carry a raw `Patient/<id>` until the event builder pseudonymises it.
  'patientRef', '*.patientRef', '*.*.patientRef',
  'patientRefs', '*.patientRefs', '*.*.patientRefs',
];

export type { Logger };

export function createLogger(options: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  const opts = {
    name: options.name ?? 'phi-broker',
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  return options.destination === undefined ? pino(opts, pino.destination(2)) : pino(opts, options.destination);
}

/** A logger for error objects: code and path only; a foreign error logs its class name, never its message. */
export function errorFields(err: unknown): Record<string, unknown> {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string' && String((err as { code: string }).code).startsWith('E_')) {
    const e = err as { code: string; path?: string };
    return { code: e.code, path: e.path };
  }
  // NATS client errors carry short protocol codes (TIMEOUT, 503, CONNECTION_CLOSED …): safe and useful.
  const natsCode = (err as { name?: unknown; code?: unknown } | null)?.name === 'NatsError' ? (err as { code?: unknown }).code : undefined;
  return typeof natsCode === 'string' && /^[A-Z0-9_]{1,40}$/.test(natsCode)
    ? { errorClass: err instanceof Error ? err.constructor.name : typeof err, natsCode }
    : { errorClass: err instanceof Error ? err.constructor.name : typeof err };
}

/**
 * The stack frames of an unexpected error for an internal-error log line, without its first line or message: a
 * foreign error's message may quote its input (V8's JSON.parse errors do), and the stack repeats the message.
 */
export function errorStack(err: unknown): string | undefined {
  if (!(err instanceof Error) || typeof err.stack !== 'string') return undefined;
  return err.stack.split('\n').filter((line) => /^\s+at /.test(line)).join('\n');
}
