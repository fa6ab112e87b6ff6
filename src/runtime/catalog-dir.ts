// Catalog file I/O at the edge: reads subjects/ and fhir-profiles/ (every *.yaml / *.yml, recursively), hands the
// text to the pure compileCatalog(), and either returns the frozen Catalog or throws one CatalogError
// (E_CATALOG_INVALID) listing every problem. Runs once at start (STYLE: config parsed once at the edge).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { compileCatalog } from '../catalog/compile.js';
import type { CatalogSourceFile } from '../catalog/compile.js';
import { CatalogError } from '../catalog/issues.js';
import type { CatalogIssue } from '../catalog/issues.js';
import type { Catalog } from '../catalog/types.js';

export interface CatalogDirs {
  /** The subjects/ folder (services and topics). */
  readonly subjects: string;
  /** The fhir-profiles/ folder (one profile per file, plus classification.yaml). */
  readonly profiles: string;
}

/** The classification's file name inside the profiles folder. */
export const CLASSIFICATION_FILE = 'classification.yaml';

/**
 * Reads every YAML file of both folders. File names in issues are `<folder name>/<path inside it>`
 * (`subjects/topics.yaml`), so messages do not depend on where the catalog lives.
 */
export function readCatalogFiles(dir: CatalogDirs): { files: CatalogSourceFile[]; issues: CatalogIssue[] } {
  const files: CatalogSourceFile[] = [];
  const issues: CatalogIssue[] = [];
  for (const [root, isProfiles] of [
    [dir.subjects, false],
    [dir.profiles, true],
  ] as const) {
    const label = basename(root);
    let paths: string[];
    try {
      paths = yamlFiles(root);
    } catch (e) {
      issues.push({
        file: label,
        path: '',
        message: `cannot read the folder (${(e as NodeJS.ErrnoException).code ?? 'error'}): expected a folder of YAML files`,
      });
      continue;
    }
    for (const path of paths) {
      const rel = relative(root, path).split(sep).join('/');
      const file = `${label}/${rel}`;
      const kind = !isProfiles ? 'subjects' : rel === CLASSIFICATION_FILE ? 'classification' : 'profile';
      try {
        files.push({ file, kind, text: readFileSync(path, 'utf8') });
      } catch (e) {
        issues.push({
          file,
          path: '',
          message: `cannot read the file (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        });
      }
    }
  }
  return { files, issues };
}

function yamlFiles(root: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  )) {
    const path = join(root, entry.name);
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name) && statSync(path).isFile()) out.push(path);
  }
  return out;
}

/** Every problem in the catalog at `dir` (empty when it is valid); never throws for a bad catalog. */
export function checkCatalog(dir: CatalogDirs): readonly CatalogIssue[] {
  const read = readCatalogFiles(dir);
  const compiled = compileCatalog(read.files);
  return read.issues.length === 0 ? compiled.issues : [...read.issues, ...compiled.issues];
}

/** Loads, validates and freezes the catalog; throws CatalogError (E_CATALOG_INVALID) listing every problem. */
export function loadCatalog(dir: CatalogDirs): Catalog {
  const read = readCatalogFiles(dir);
  const compiled = compileCatalog(read.files);
  if (read.issues.length > 0 || compiled.catalog === undefined)
    throw new CatalogError([...read.issues, ...compiled.issues]);
  return compiled.catalog;
}
