// The typed lint (eslint.config.js, STYLE §11) stays meaningful: a green `npm run lint` must mean the rules ran on
// the code. These checks read the resolved configuration only (no type program, so they cost no lint run): every
// directory of tsconfig.json's program is linted with the four typed rules, and src/ alone also with no-console.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const TYPED_RULES = [
  '@typescript-eslint/no-floating-promises',
  '@typescript-eslint/no-misused-promises',
  '@typescript-eslint/await-thenable',
  '@typescript-eslint/switch-exhaustiveness-check',
];

/** The severity of each rule for `file` (2 = error), as ESLint resolves eslint.config.js. */
async function severities(eslint: ESLint, file: string): Promise<Record<string, number | undefined>> {
  const config = (await eslint.calculateConfigForFile(file)) as
    { rules?: Record<string, [number, ...unknown[]] | undefined> } | undefined;
  return Object.fromEntries(Object.entries(config?.rules ?? {}).map(([name, entry]) => [name, entry?.[0]]));
}

describe('eslint.config.js', () => {
  const eslint = new ESLint({ cwd: root });

  it('lints src/, test/ and bench/ with the typed rules as errors, from tsconfig.json', async () => {
    for (const file of ['src/broker/broker.ts', 'test/index.test.ts', 'bench/main.ts', 'vitest.config.ts']) {
      expect(await eslint.isPathIgnored(file), file).toBe(false);
      const rules = await severities(eslint, file);
      for (const rule of TYPED_RULES) expect(rules[rule], `${rule} for ${file}`).toBe(2);
      const config = (await eslint.calculateConfigForFile(file)) as {
        languageOptions?: { parserOptions?: { project?: unknown } };
      };
      expect(config.languageOptions?.parserOptions?.project, file).toEqual(['./tsconfig.json']);
    }
  });

  it('forbids console.* in src/ only (STYLE §10): bench/ and test/ print by design', async () => {
    expect((await severities(eslint, 'src/log/log.ts'))['no-console']).toBe(2);
    expect((await severities(eslint, 'bench/main.ts'))['no-console']).toBeUndefined();
    expect((await severities(eslint, 'test/index.test.ts'))['no-console']).toBeUndefined();
  });

  it('leaves build output alone', async () => {
    expect(await eslint.isPathIgnored('dist/src/index.js')).toBe(true);
  });
});
