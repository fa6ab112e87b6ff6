// Copies the non-TypeScript files the compiled code reads at run time (generated FHIR tables) into dist/.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const from = 'src/fhir';
const to = 'dist/src/fhir';
mkdirSync(to, { recursive: true });
for (const f of readdirSync(from)) if (f.endsWith('.json')) copyFileSync(join(from, f), join(to, f));
