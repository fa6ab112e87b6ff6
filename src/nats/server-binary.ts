// Finds the nats-server executable: NATS_SERVER_BIN when set, else `nats-server` on PATH (Debian's
// package installs /usr/bin/nats-server; scripts/ensure-nats-server.mjs installs it when missing).
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BrokerError } from '../wire/errors.js';

export const NATS_SERVER_HINT =
  'nats-server not found: install it (Debian/Ubuntu: `apt-get install nats-server`, or run `node scripts/ensure-nats-server.mjs` as root), or set NATS_SERVER_BIN to its path.';

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findNatsServerBinary(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['NATS_SERVER_BIN'];
  if (explicit !== undefined && explicit !== '') {
    if (!isExecutable(explicit))
      throw new BrokerError(
        'E_CONFIG_INVALID',
        `NATS_SERVER_BIN=${explicit} is not an executable file. ${NATS_SERVER_HINT}`,
        {
          path: 'NATS_SERVER_BIN',
        },
      );
    return explicit;
  }
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'nats-server');
    if (isExecutable(candidate)) return candidate;
  }
  throw new BrokerError('E_SETUP_MISSING', NATS_SERVER_HINT);
}
