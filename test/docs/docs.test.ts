// The README and docs/ stay true to the tree: the README's SDK example is examples/sdk-quickstart.ts and compiles
// against the public API, every relative link and every `src/…` path the docs name exists, and docs/README.md
// indexes every document in docs/.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`)].filter((f) => f.endsWith('.md'));
const EXAMPLE = 'examples/sdk-quickstart.ts';

/** The first ```ts block after the heading `heading`. */
function codeBlockAfter(markdown: string, heading: string): string | undefined {
  const from = markdown.indexOf(`\n${heading}\n`);
  if (from < 0) return undefined;
  return /```ts\n([\s\S]*?)```/.exec(markdown.slice(from))?.[1];
}

describe("the README's SDK example", () => {
  it(`is ${EXAMPLE}, character for character`, () => {
    const block = codeBlockAfter(read('README.md'), '## A service, in a few lines');
    expect(block, 'a ```ts block under "## A service, in a few lines"').toBeDefined();
    expect(block).toBe(read(EXAMPLE));
  });

  it('type-checks against the public API with the project settings (phi-broker → src/index.ts)', () => {
    const configFile = ts.readConfigFile(join(ROOT, 'tsconfig.json'), (p) => ts.sys.readFile(p));
    const parsed = ts.parseJsonConfigFileContent(configFile.config, ts.sys, ROOT);
    expect(parsed.options.paths?.['phi-broker'], 'tsconfig.json maps phi-broker to the source entry').toEqual([
      './src/index.ts',
    ]);
    const tsProgram = ts.createProgram([join(ROOT, EXAMPLE)], { ...parsed.options, noEmit: true });
    const problems = ts
      .getPreEmitDiagnostics(tsProgram)
      .map(
        (d) =>
          `${d.file === undefined ? '' : relative(ROOT, d.file.fileName)}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
      );
    expect(problems).toEqual([]);
  });
});

describe('docs/', () => {
  it('every relative link in README.md and docs/*.md (outside code) points to a file that exists', () => {
    const broken: string[] = [];
    for (const doc of DOCS) {
      const prose = read(doc)
        .replace(/```[\s\S]*?```/g, '')
        .replace(/`[^`\n]*`/g, '');
      for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (target === undefined || /^[a-z]+:/.test(target) || target.startsWith('#')) continue;
        const file = target.split('#')[0] ?? '';
        if (!existsSync(join(ROOT, dirname(doc), file))) broken.push(`${doc}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('every src/ path the docs name exists', () => {
    const missing: string[] = [];
    for (const doc of DOCS) {
      for (const [path] of read(doc).matchAll(/(?<![\w/.-])src\/[\w./-]*[\w/]/g)) {
        // `dist/src/…` are build outputs; a `.js` name in src/ is the compiled form of a `.ts` module.
        const source = path.replace(/\.js$/, '.ts');
        if (!existsSync(join(ROOT, source))) missing.push(`${doc}: ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('docs/README.md indexes every document in docs/', () => {
    const index = read('docs/README.md');
    const unindexed = DOCS.filter((d) => d.startsWith('docs/') && d !== 'docs/README.md').filter(
      (d) => !index.includes(`](${d.slice('docs/'.length)})`),
    );
    expect(unindexed).toEqual([]);
  });
});
