// `phi-broker catalog export-profiles`: writes each profile a partner receives as a FHIR R4 StructureDefinition
// (`StructureDefinition-<id>.json`, the file naming of FHIR implementation guides), the same the gateway serves.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Catalog } from '../catalog/types.js';
import { partnerProfiles, profileStructureDefinition } from '../gateway/profiles/structure-definition.js';

export function runExportProfiles(catalog: Catalog, outDir: string, out: Writable): void {
  mkdirSync(outDir, { recursive: true });
  const profiles = partnerProfiles(catalog);
  for (const p of profiles) {
    const file = join(outDir, `StructureDefinition-${p.id}.json`);
    writeFileSync(file, `${JSON.stringify(profileStructureDefinition(p), null, 2)}\n`);
    out.write(`${file}\n`);
  }
  out.write(`${profiles.length} partner profile${profiles.length === 1 ? '' : 's'} written to ${outDir}\n`);
}
