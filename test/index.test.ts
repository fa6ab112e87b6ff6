// The public surface (src/index.ts) is what the README's SDK example imports; keep the two in step.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

describe('public API', () => {
  it('exports exactly the documented runtime names', () => {
    expect(Object.keys(api).sort()).toEqual([
      'BrokerError',
      'ERROR_CODES',
      'PhiClient',
      'initCrypto',
      'isBrokerError',
      'isBrokerErrorCode',
      'keyProtection',
      'openServiceKeys',
      'pinnedRootKey',
      'readJwks',
      'readServiceKeyVersions',
      'readServiceKeys',
      'serviceConnectionOptions',
    ]);
  });

  it("every name the README's SDK example imports is exported", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const imported = /import \{([^}]+)\} from 'phi-broker';/.exec(readme)?.[1];
    expect(imported).toBeDefined();
    for (const name of (imported ?? '').split(',').map((s) => s.trim())) expect(Object.keys(api)).toContain(name);
  });
});

describe('from plain JavaScript', () => {
  it('the compiled package imports by its own name (package.json exports) from an ES module', async () => {
    const { execFileSync } = await import('node:child_process');
    const root = new URL('..', import.meta.url).pathname;
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { PhiClient, ERROR_CODES } from 'phi-broker'; console.log(typeof PhiClient.connect, Object.keys(ERROR_CODES).length)",
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(out.trim()).toBe(`function ${Object.keys(api.ERROR_CODES).length}`);
  });
});
