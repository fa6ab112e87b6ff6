// The public surface (src/index.ts) is what the README's SDK example imports; keep the two in step.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

describe('public API', () => {
  it('exports exactly the documented runtime names', () => {
    expect(Object.keys(api).sort()).toEqual(['BrokerError', 'ERROR_CODES', 'PhiClient', 'initCrypto', 'isBrokerError', 'isBrokerErrorCode', 'readJwks', 'readServiceKeys']);
  });

  it("every name the README's SDK example imports is exported", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const imported = /import \{([^}]+)\} from 'phi-broker';/.exec(readme)?.[1];
    expect(imported).toBeDefined();
    for (const name of (imported ?? '').split(',').map((s) => s.trim())) expect(Object.keys(api)).toContain(name);
  });
});
