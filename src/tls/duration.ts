// Certificate lifetimes on the command line: `90s`, `30m`, `24h`, `7d` (one number, one unit).
const UNITS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds; throws TypeError on anything but `<positive integer><s|m|h|d>`. */
export function parseDuration(text: string): number {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text.trim());
  const unit = m === null ? undefined : UNITS[m[2] as string];
  if (m === null || unit === undefined)
    throw new TypeError(`not a duration (e.g. 24h, 30m, 7d): ${JSON.stringify(text)}`);
  return Number(m[1]) * unit;
}
