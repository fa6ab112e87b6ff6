// `phi-broker demo` (its own embedded nats-server, from a directory with no catalog, so it uses the shipped
// one): the JSON summary says what was published and what each subscriber received, and its logs — at debug
// level, so there are some — carry none of the example PHI. The text form ends with `demo ok`. It runs on mTLS
// (each service as its own identity); `--insecure-plaintext` runs it without TLS and says so on stderr.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_PHI, ROOT, killLeftovers, runCli, type CliResult } from './run-cli.js';

const PATIENT = JSON.parse(readFileSync(join(ROOT, 'examples', 'patient.json'), 'utf8')) as Record<string, unknown>;

interface DemoSummary {
  ok: boolean;
  published: {
    file: string;
    as: string;
    result: { status: string; id: string; code?: string; path?: string; message?: string; deliveries?: number };
  }[];
  received: Record<
    string,
    { type: string; profile: string; purpose: string; publisher: string; resource: Record<string, unknown> }[]
  >;
}

let cwd: string;
let json: CliResult;
let text: CliResult;
let plaintext: CliResult;

beforeAll(async () => {
  cwd = mkdtempSync(join(tmpdir(), 'phi-broker-demo-cwd-'));
  // Three at once (each loads the FHIR model): generous timeouts on a loaded 2-core machine.
  [json, text, plaintext] = await Promise.all([
    runCli(['demo', '--json', '--log-level', 'debug'], { cwd, timeoutMs: 110_000 }),
    runCli(['demo'], { cwd, timeoutMs: 110_000 }),
    runCli(['demo', '--insecure-plaintext'], { cwd, timeoutMs: 110_000 }),
  ]);
}, 120_000);

afterAll(async () => {
  await killLeftovers();
  if (cwd !== undefined) rmSync(cwd, { recursive: true, force: true });
});

describe('phi-broker demo --json', () => {
  let summary: DemoSummary;

  beforeAll(() => {
    expect(json.code, json.stderr).toBe(0);
    summary = JSON.parse(json.stdout) as DemoSummary;
  });

  it('reports ok with three published results: accepted, accepted, rejected E_UNKNOWN_ELEMENT', () => {
    expect(summary.ok).toBe(true);
    expect(summary.published.map((p) => [p.file, p.as, p.result.status])).toEqual([
      ['patient.json', 'registration', 'accepted'],
      ['observation.json', 'ehr', 'accepted'],
      ['bad-patient.json', 'registration', 'rejected'],
    ]);
    expect(summary.published[2]?.result).toMatchObject({ code: 'E_UNKNOWN_ELEMENT', path: 'Patient.name[0].nickname' });
  });

  it('notification received the Patient with exactly its minimum-necessary elements', () => {
    const [first] = summary.received['notification'] ?? [];
    expect(first).toMatchObject({ type: 'Patient', publisher: 'registration', purpose: 'HOPERAT' });
    const resource = first?.resource ?? {};
    expect(Object.keys(resource).sort()).toEqual(['id', 'meta', 'name', 'resourceType', 'telecom']);
    expect(resource['id']).not.toBe(PATIENT['id']); // notification's keyed pseudonym of it
    expect(resource['name']).toEqual(PATIENT['name']);
    expect((resource['meta'] as { profile?: unknown }).profile).toEqual([first?.profile]);
  });

  it('its logs (stderr, debug level) name events and codes but none of the example PHI', () => {
    expect(json.stderr).toContain('"event":"ingest.rejected"');
    expect(json.stderr).toContain('E_UNKNOWN_ELEMENT');
    for (const s of EXAMPLE_PHI) expect(json.stderr).not.toContain(s);
  });
});

describe('phi-broker demo', () => {
  it('exits 0, prints nothing on stderr and ends with `demo ok`', () => {
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr).toBe('');
    expect(text.stdout.trimEnd().split('\n').at(-1)).toBe('demo ok');
    expect(text.stdout.split('\n')[0]).toMatch(
      /^phi-broker demo — NATS at nats:\/\/127\.0\.0\.1:\d+ \(mTLS, one identity per service\), catalog /,
    );
    expect(text.stdout).toMatch(
      /^registration publishes examples\/bad-patient\.json: rejected [0-9a-f-]{36} E_UNKNOWN_ELEMENT: Patient\.name\[0\]\.nickname: /m,
    );
  });
});

describe('phi-broker demo --insecure-plaintext', () => {
  it('runs the same story without TLS, saying so: the first stdout line and a warning on stderr', () => {
    expect(plaintext.code, plaintext.stderr).toBe(0);
    expect(plaintext.stdout.trimEnd().split('\n').at(-1)).toBe('demo ok');
    expect(plaintext.stdout.split('\n')[0]).toContain('(INSECURE PLAINTEXT)');
    expect(plaintext.stderr).toMatch(/^WARNING: --insecure-plaintext: NATS without TLS .* Local development only\.\n$/);
  });
});
