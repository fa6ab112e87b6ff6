// The import rules of .dependency-cruiser.cjs (docs/architecture.md): src/ keeps them, the layer map is a DAG
// that names every folder, and each kind of rule reports a planted violation.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type IForbiddenRuleType, type IViolation } from 'dependency-cruiser';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const config = createRequire(import.meta.url)(join(ROOT, '.dependency-cruiser.cjs')) as {
  forbidden: IForbiddenRuleType[];
  options: Record<string, unknown>;
  MAY_IMPORT: Record<string, string[]>;
};

async function violations(baseDir: string, withTsConfig: boolean): Promise<IViolation[]> {
  const result = await cruise(['src'], {
    baseDir,
    ruleSet: { forbidden: config.forbidden },
    validate: true,
    ...(withTsConfig ? { tsPreCompilationDeps: true, tsConfig: { fileName: join(ROOT, 'tsconfig.json') } } : {}),
  });
  if (typeof result.output === 'string') throw new TypeError('expected a cruise result object');
  return result.output.summary.violations;
}

/** The folders of src/ that hold modules, as MAY_IMPORT names them (access/ by its sub-folders). */
function srcFolders(): string[] {
  const src = join(ROOT, 'src');
  const out: string[] = [];
  for (const name of readdirSync(src)) {
    if (!statSync(join(src, name)).isDirectory()) continue;
    if (name === 'access') out.push(...readdirSync(join(src, name)).map((sub) => `access/${sub}`));
    else out.push(name);
  }
  return out.sort();
}

describe('the layer map', () => {
  it('names every folder of src/, and only those', () => {
    expect(Object.keys(config.MAY_IMPORT).sort()).toEqual(srcFolders());
    for (const allowed of Object.values(config.MAY_IMPORT)) {
      for (const a of allowed) expect(srcFolders()).toContain(a);
    }
  });

  it('is a DAG: no folder can reach itself through what it may import', () => {
    const reaches = (from: string, seen = new Set<string>()): Set<string> => {
      for (const next of config.MAY_IMPORT[from] ?? []) {
        if (!seen.has(next)) {
          seen.add(next);
          reaches(next, seen);
        }
      }
      return seen;
    };
    const cyclic = Object.keys(config.MAY_IMPORT).filter((f) => reaches(f).has(f));
    expect(cyclic).toEqual([]);
  });

  it('keeps the SDK and the broker apart, and wire/ at the bottom', () => {
    expect(config.MAY_IMPORT.sdk).not.toContain('broker');
    expect(config.MAY_IMPORT.broker).not.toContain('sdk');
    expect(config.MAY_IMPORT.wire).toEqual([]);
    expect(config.MAY_IMPORT.crypto).toEqual(['wire']);
  });
});

describe('src/', () => {
  it('keeps every import rule', async () => {
    const found = await violations(ROOT, true);
    expect(found.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  });
});

describe('each kind of rule reports a planted violation', () => {
  const dir = mkdtempSync(join(tmpdir(), 'phi-arch-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const plant = (path: string, text: string): void => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  plant('src/broker/broker.js', 'export const b = 1;\n');
  plant('src/wire/names.js', "import { b } from '../broker/broker.js';\nexport const a = b;\n");
  plant('src/catalog/load.js', "import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n");
  plant('src/sdk/client.js', "import { b } from '../broker/broker.js';\nexport const c = b;\n");
  plant('src/registry/a.js', "import { y } from './b.js';\nexport const x = () => y;\n");
  plant('src/registry/b.js', "import { x } from './a.js';\nexport const y = () => x;\n");

  it('names the rule, the importer and the imported', async () => {
    const found = (await violations(dir, false)).map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);
    expect(found).toEqual(
      expect.arrayContaining([
        'layer-wire: src/wire/names.js → src/broker/broker.js',
        'pure-core-no-io: src/catalog/load.js → fs',
        'layer-sdk: src/sdk/client.js → src/broker/broker.js',
        'no-circular: src/registry/a.js → src/registry/b.js',
      ]),
    );
  });
});
