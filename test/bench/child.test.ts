// A forked bench process that fails (bench/child.ts failChild) reports its own error to the parent over IPC:
// whatever waits on it is rejected with that error and its code, not with a bare exit code or a timeout. Runs the
// compiled bench (dist/, built by `npm run build`), as the bench runs its children.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Child } from '../../bench/child.js';
import { ROOT } from '../helpers/stack.js';

const CHILD_JS = join(ROOT, 'dist', 'bench', 'child.js');
const dir = mkdtempSync(join(tmpdir(), 'phi-bench-child-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A script that fails the way a bench process does when its work throws. */
function failingScript(): string {
  if (!existsSync(CHILD_JS)) throw new Error(`${CHILD_JS} is missing: run \`npm run build\` first`);
  const file = join(dir, 'fails.mjs');
  writeFileSync(
    file,
    `import { failChild } from ${JSON.stringify(pathToFileURL(CHILD_JS).href)};
failChild('bench test', Object.assign(new Error('the registry stage refused its input'), { code: 'E_STORED_INVALID' }));
`,
  );
  return pathToFileURL(file).href;
}

describe('a failing bench process', () => {
  it("rejects what waits on it with the process's own error and code", async () => {
    const child = new Child('failing', failingScript(), {});
    await expect(child.next('ready', 60_000)).rejects.toThrow(
      /^bench process failing exited \(code 1, signal null\): the registry stage refused its input \[E_STORED_INVALID\]$/,
    );
    // Asked again after the exit: the same error, at once.
    await expect(child.next('stats', 60_000)).rejects.toThrow(/the registry stage refused its input/);
  });
});
