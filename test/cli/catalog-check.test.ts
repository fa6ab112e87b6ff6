// `phi-broker catalog check` (no NATS needed): the shipped catalog is valid; a broken copy gets one line per
// problem, `<file>: <path inside it>: <message>`, and exit 1; `up` refuses to start on it. And `--help` works
// for every command, naming its options.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ROOT, killLeftovers, runCli } from './run-cli.js';

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'phi-broker-catalog-'));
});

afterAll(async () => {
  await killLeftovers();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

function replaceOnce(file: string, from: string, to: string): void {
  const text = readFileSync(file, 'utf8');
  if (!text.includes(from)) throw new Error(`fixture setup: ${from} not in ${file}`);
  writeFileSync(file, text.replace(from, to));
}

describe('phi-broker catalog check', () => {
  it('the shipped catalog: `catalog ok`, exit 0', async () => {
    const r = await runCli(['catalog', 'check']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^catalog ok/);
  });

  it('run outside the repository, it checks the catalog shipped with phi-broker', async () => {
    const r = await runCli(['catalog', 'check'], { cwd: tmp });
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd()).toBe(`catalog ok: ${join(ROOT, 'subjects')}, ${join(ROOT, 'fhir-profiles')}`);
  });

  describe('a copy with a misspelt allow path and a subscriber naming an unknown profile', () => {
    let subjects: string;
    let profiles: string;
    let allowIndex: number;
    let billingIndex: number;

    beforeAll(() => {
      const root = join(tmp, 'broken');
      subjects = join(root, 'subjects');
      profiles = join(root, 'fhir-profiles');
      cpSync(join(ROOT, 'subjects'), subjects, { recursive: true });
      cpSync(join(ROOT, 'fhir-profiles'), profiles, { recursive: true });
      const contact = parseYaml(readFileSync(join(profiles, 'patient-contact.yaml'), 'utf8')) as { allow: string[] };
      allowIndex = contact.allow.indexOf('Patient.name');
      replaceOnce(join(profiles, 'patient-contact.yaml'), '  - Patient.name\n', '  - Patient.nmae\n');
      const admin = parseYaml(readFileSync(join(subjects, 'administrative.yaml'), 'utf8')) as {
        topics: { Patient: { subscribers: { service: string }[] } };
      };
      billingIndex = admin.topics.Patient.subscribers.findIndex((s) => s.service === 'billing');
      replaceOnce(join(subjects, 'administrative.yaml'), 'profile: patient-billing,', 'profile: patient-nobody,');
      expect(allowIndex).toBeGreaterThanOrEqual(0);
      expect(billingIndex).toBeGreaterThanOrEqual(0);
    });

    it('exit 1, one `<file>: <path>: <message>` line per problem naming both, then the count', async () => {
      const r = await runCli(['catalog', 'check', '--subjects', subjects, '--profiles', profiles]);
      expect(r.code).toBe(1);
      const out = r.stdout.split('\n').filter((l) => l !== '');
      const problems = out.slice(0, -1);
      expect(out.at(-1)).toBe(`${problems.length} problems`);
      const profileLine = problems.find((l) =>
        l.startsWith(`fhir-profiles/patient-contact.yaml: allow[${allowIndex}]: `),
      );
      expect(profileLine, r.stdout).toBeDefined();
      expect(profileLine).toContain('Patient.nmae');
      const topicLine = problems.find((l) =>
        l.startsWith(`subjects/administrative.yaml: topics.Patient.subscribers[${billingIndex}].profile: `),
      );
      expect(topicLine, r.stdout).toBeDefined();
      expect(topicLine).toContain('patient-nobody');
      for (const l of problems) expect(l).toMatch(/^(subjects|fhir-profiles)\/[\w./-]+\.yaml: \S.*: \S/);
    });

    it('`up` refuses to start on it: exit 1, E_CATALOG_INVALID naming both, no NATS started', async () => {
      const dataDir = join(tmp, 'up-data');
      const r = await runCli(['up', '--data-dir', dataDir, '--subjects', subjects, '--profiles', profiles]);
      expect(r.code).toBe(1);
      expect(r.stdout).not.toContain('ready');
      expect(r.stderr).toMatch(/^phi-broker: E_CATALOG_INVALID: /);
      expect(r.stderr).toContain(`fhir-profiles/patient-contact.yaml: allow[${allowIndex}]`);
      expect(r.stderr).toContain(`subjects/administrative.yaml: topics.Patient.subscribers[${billingIndex}].profile`);
      expect(existsSync(join(dataDir, 'nats'))).toBe(false);
    });
  });

  it('a folder that is not there: a whole-file problem, printed as `(file)`', async () => {
    const r = await runCli([
      'catalog',
      'check',
      '--subjects',
      join(tmp, 'no-such-subjects'),
      '--profiles',
      join(ROOT, 'fhir-profiles'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^no-such-subjects: \(file\): cannot read the folder \(ENOENT\)/m);
  });
});

/** Options each command's help must name (besides -h, --help). A command found in the help but not listed here is still checked for a usage line. */
const OPTIONS: Record<string, readonly string[]> = {
  '': ['--data-dir <dir>', '--subjects <dir>', '--profiles <dir>', '--log-level <level>'],
  up: ['--port <port>', '--insecure-plaintext'],
  demo: ['--json', '--insecure-plaintext'],
  publish: ['--as <service>', '--whole', '--deadline <ms>'],
  tail: ['--as <service>', '--type <type>', '--json', '--count <n>'],
  catalog: [],
  'catalog check': [],
  quarantine: [],
  'quarantine list': ['--json', '--limit <n>'],
  'quarantine show': ['--decrypt'],
};

/** The subcommands listed under `Commands:` in a help text (without commander's own `help`). */
function subcommands(help: string): string[] {
  const section = help.split(/^Commands:\n/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1] ?? '').filter((c) => c !== 'help');
}

describe('--help', () => {
  const helps = new Map<string, { code: number | null; stdout: string; stderr: string }>();

  beforeAll(async () => {
    // Breadth first through the command tree, each level's helps in parallel.
    let level = [''];
    while (level.length > 0) {
      const results = await Promise.all(
        level.map((path) => runCli([...(path === '' ? [] : path.split(' ')), '--help'])),
      );
      const next: string[] = [];
      level.forEach((path, i) => {
        const r = results[i];
        if (r === undefined) return;
        helps.set(path, r);
        for (const sub of subcommands(r.stdout)) next.push(path === '' ? sub : `${path} ${sub}`);
      });
      level = next;
    }
  });

  it('finds every command named in the tests', () => {
    for (const path of Object.keys(OPTIONS)) expect([...helps.keys()]).toContain(path);
  });

  it('exits 0 for every command with a usage line and its options', () => {
    for (const [path, r] of helps) {
      expect(r.code, path).toBe(0);
      expect(r.stderr, path).toBe('');
      expect(r.stdout, path).toMatch(new RegExp(`^Usage: phi-broker${path === '' ? '' : ` ${path}`} `));
      expect(r.stdout, path).toContain('-h, --help');
      for (const option of OPTIONS[path] ?? []) expect(r.stdout, `${path}: ${option}`).toContain(option);
    }
  });
});
