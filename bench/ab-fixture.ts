// The scene the before/after tools (ab-builds.js, ab-sdk.js, drain.js) share: bench/catalog/fanout-3 (a Patient
// to 3 subscribers), development keys for every service in it and the broker's secrets, in a scratch directory.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BrokerSecrets } from '../src/crypto/broker-secrets.js';
import { ensureBrokerSecrets } from '../src/runtime/broker-secrets.js';
import { loadCatalog } from '../src/runtime/catalog-dir.js';
import { type Catalog } from '../src/catalog/types.js';
import { BROKER_ID } from '../src/wire/ids.js';
import { ensureDevKeys } from '../src/runtime/key-files.js';
import { HERE } from './ab-args.js';

export interface FanoutThree {
  readonly keysDir: string;
  readonly subjectsDir: string;
  readonly profilesDir: string;
  readonly catalog: Catalog;
  readonly secrets: BrokerSecrets;
}

export function fanoutThree(dir: string): FanoutThree {
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  const subjectsDir = join(HERE, 'bench', 'catalog', 'fanout-3');
  const profilesDir = join(HERE, 'fhir-profiles');
  const catalog = loadCatalog({ subjects: subjectsDir, profiles: profilesDir });
  ensureDevKeys(keysDir, [BROKER_ID, ...catalog.services.keys()]);
  return { keysDir, subjectsDir, profilesDir, catalog, secrets: ensureBrokerSecrets(keysDir) };
}
