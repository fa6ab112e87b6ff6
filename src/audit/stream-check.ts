// Whether an audit stream (PHI_AUDIT, PHI_AUDIT_WITNESS) still has the settings that keep its records: retention
// no shorter than configured (six years by default, 45 CFR 164.316(b)(2)(i)), deny_delete and deny_purge on, file
// storage, as many replicas, and no message or byte limit that would discard records early. Pure over the JetStream
// stream configuration (nats-server 2.9 StreamConfig) and the one provisioning writes (setup.ts).
import { StorageType, type StreamConfig } from 'nats';

export interface SettingProblem {
  readonly stream: string;
  /** The StreamConfig field at fault (`max_age`, `deny_delete` …), or `stream` when it does not exist. */
  readonly setting: string;
  readonly message: string;
}

const NS_PER_MS = 1_000_000;

/** A duration in nanoseconds as days, hours, minutes or seconds (the largest unit that divides it, for messages). */
export function formatNanos(ns: number): string {
  const ms = ns / NS_PER_MS;
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A limit below `wanted` (-1 or 0: none) — a stream with it discards records that should stay. */
function limitBelow(actual: number | undefined, wanted: number | undefined): boolean {
  const a = actual ?? -1;
  const w = wanted ?? -1;
  if (a <= 0) return false;
  return w <= 0 || a < w;
}

/**
 * What is weaker in `actual` than in `wanted` (the configuration provisioning writes). Undefined `actual`: the
 * stream does not exist. Lengthened retention, more replicas, higher limits are not problems.
 */
export function streamSettingProblems(
  stream: string,
  actual: StreamConfig | undefined,
  wanted: Partial<StreamConfig>,
): SettingProblem[] {
  if (actual === undefined) return [{ stream, setting: 'stream', message: `${stream} does not exist` }];
  const out: SettingProblem[] = [];
  const add = (setting: string, message: string): void => {
    out.push({ stream, setting, message: `${stream} ${message}` });
  };
  const wantedAge = wanted.max_age ?? 0;
  if (wantedAge > 0 && actual.max_age > 0 && actual.max_age < wantedAge)
    add(
      'max_age',
      `max_age is ${formatNanos(actual.max_age)}, shorter than the configured retention ${formatNanos(wantedAge)} (45 CFR 164.316(b)(2)(i))`,
    );
  if (wanted.deny_delete === true && actual.deny_delete !== true)
    add('deny_delete', 'deny_delete is off: records can be deleted one by one');
  if (wanted.deny_purge === true && actual.deny_purge !== true)
    add('deny_purge', 'deny_purge is off: the stream can be purged');
  if (wanted.storage === StorageType.File && actual.storage !== StorageType.File)
    add('storage', `storage is ${actual.storage}, configured file: records do not survive a server restart`);
  if ((actual.num_replicas || 1) < (wanted.num_replicas ?? 1))
    add('num_replicas', `has ${actual.num_replicas} replica(s), configured ${wanted.num_replicas}`);
  for (const setting of ['max_msgs', 'max_bytes', 'max_msgs_per_subject'] as const) {
    if (limitBelow(actual[setting], wanted[setting]))
      add(
        setting,
        `${setting} is ${actual[setting]}, configured ${(wanted[setting] ?? -1) <= 0 ? 'none' : wanted[setting]}: records are discarded before their retention ends`,
      );
  }
  return out;
}
