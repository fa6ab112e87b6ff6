// The directory of phi-broker's own package.json, whether running from src/ (tsx) or dist/ (compiled):
// where the example catalog and the demo's example resources live.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrokerError } from '../wire/errors.js';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'phi-broker') {
      cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir)
      throw new BrokerError('E_SETUP_MISSING', 'cannot find the phi-broker package root (reinstall phi-broker)');
    dir = parent;
  }
}
