// docs/cli.md against the commander program of src/cli/main.ts, walked in-process: every command, argument and
// visible option the program has is documented under a `### \`<command>\`` heading, the global options under
// "## Global options", and every command heading names a command the program has.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { program } from '../../src/cli/main.js';

const CLI_MD = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
const GLOBAL = '(global)';

/** The text under each `### \`<command path>\`` heading, and under `## Global options` as GLOBAL. */
function sections(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of markdown.split('\n')) {
    const command = /^### `([^`]+)`\s*$/.exec(line);
    if (command !== null) current = command[1];
    else if (/^## Global options\s*$/.test(line)) current = GLOBAL;
    else if (/^#{1,3} /.test(line)) current = undefined;
    if (current === undefined) continue;
    out.set(current, `${out.get(current) ?? ''}${line}\n`);
  }
  return out;
}

/** Every command under `root` with its path from the root ("consent add"), depth first. */
function commands(root: Command, prefix: string[] = []): { path: string; command: Command }[] {
  return root.commands.flatMap((c) => {
    const path = [...prefix, c.name()];
    return [{ path: path.join(' '), command: c }, ...commands(c, path)];
  });
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const mentions = (text: string, flag: string): boolean => new RegExp(`${escape(flag)}(?![\\w-])`).test(text);

/** What docs/cli.md lacks or has too many, as one line each; empty when the two agree. */
function mismatches(root: Command, markdown: string): string[] {
  const docs = sections(markdown);
  const problems: string[] = [];
  const visibleFlags = (c: Command): string[] =>
    c.options.filter((o) => !o.hidden).map((o) => o.long ?? o.short ?? o.flags);

  const global = docs.get(GLOBAL);
  if (global === undefined) problems.push('no "## Global options" section');
  for (const flag of visibleFlags(root))
    if (global !== undefined && !mentions(global, flag)) problems.push(`global option ${flag}: not documented`);

  const all = commands(root);
  for (const { path, command } of all) {
    const own = docs.get(path);
    const needsSection =
      command.commands.length === 0 || command.options.length > 0 || command.registeredArguments.length > 0;
    if (own === undefined) {
      if (needsSection) problems.push(`${path}: no "### \`${path}\`" section`);
      continue;
    }
    for (const flag of visibleFlags(command))
      if (!mentions(own, flag)) problems.push(`${path}: option ${flag} not documented in its section`);
    for (const arg of command.registeredArguments)
      if (!new RegExp(`[<[]${escape(arg.name())}[>\\]|]`).test(own))
        problems.push(`${path}: argument ${arg.name()} not documented in its section`);
  }

  const known = new Set(all.map((c) => c.path));
  for (const documented of docs.keys())
    if (documented !== GLOBAL && !known.has(documented))
      problems.push(`${documented}: documented, but phi-broker has no such command`);
  return problems;
}

describe('docs/cli.md against phi-broker --help', () => {
  it('the program has the commands docs/cli.md is about (the walk sees subcommands)', () => {
    const paths = commands(program).map((c) => c.path);
    expect(paths).toContain('up');
    expect(paths).toContain('consent add');
    expect(paths).toContain('audit verify'); // registered by src/cli/audit.ts
    expect(paths.length).toBeGreaterThan(25);
  });

  it('documents every command, argument and visible option, and no command that does not exist', () => {
    expect(mismatches(program, CLI_MD)).toEqual([]);
  });

  it('reports a removed option, a removed section and an invented command', () => {
    const consentAdd = sections(CLI_MD).get('consent add') ?? '';
    expect(consentAdd).toContain('--deny-label');
    const doctored = CLI_MD.replace(consentAdd, consentAdd.replaceAll('--deny-label', '--deny-tag'))
      .replace(/^### `catalog check`$/m, '### `catalog lint`')
      .concat('\n### `frobnicate`\n\nNot a command.\n');
    expect(mismatches(program, doctored).sort()).toEqual(
      [
        'catalog check: no "### `catalog check`" section',
        'catalog lint: documented, but phi-broker has no such command',
        'consent add: option --deny-label not documented in its section',
        'frobnicate: documented, but phi-broker has no such command',
      ].sort(),
    );
  });
});
