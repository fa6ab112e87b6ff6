// One catalog YAML file parsed with its node positions (YAML 1.2, `yaml` package), so every problem found later
// can name the line it is on; and zod issues mapped onto the same file/path/line form (src/catalog/issues.ts).
import { LineCounter, isNode, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import type { z } from 'zod';
import { formatYamlPath } from './issues.js';
import type { CatalogIssue } from './issues.js';

export interface YamlSource {
  readonly file: string;
  /** The plain data (undefined for an empty file). */
  readonly data: unknown;
  /** Line of the node at `path` (or of its nearest ancestor that exists). */
  lineOf(path: readonly PropertyKey[]): number | undefined;
  /** An issue at `path` in this file. */
  issue(path: readonly PropertyKey[], message: string): CatalogIssue;
}

/** Parses YAML text; syntax errors (with their lines) come back as issues and no source. */
export function parseYamlSource(file: string, text: string): { source: YamlSource } | { issues: CatalogIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      issues: doc.errors.map((e) => ({
        file,
        path: '',
        message: `YAML syntax: ${e.message.split('\n')[0] ?? e.code}`,
        line: lineCounter.linePos(e.pos[0]).line,
      })),
    };
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const lineOf = (path: readonly PropertyKey[]): number | undefined => nodeLine(doc, lineCounter, path);
  const source: YamlSource = {
    file,
    data,
    lineOf,
    issue(path, message) {
      const line = lineOf(path);
      return line === undefined
        ? { file, path: formatYamlPath(path), message }
        : { file, path: formatYamlPath(path), message, line };
    },
  };
  return { source };
}

function nodeLine(doc: Document, lineCounter: LineCounter, path: readonly PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
  }
  return undefined;
}

/** Zod issues (paths relative to `base`) → catalog issues, with a plainer message for a missing field. */
export function zodIssues(source: YamlSource, base: readonly PropertyKey[], error: z.ZodError): CatalogIssue[] {
  return error.issues.map((i) => {
    const path = [...base, ...i.path];
    let message = i.message;
    if (i.code === 'invalid_type' && /received undefined$/.test(i.message)) message = `missing: expected ${i.expected}`;
    else if (i.code === 'unrecognized_keys')
      message = `unknown key${i.keys.length === 1 ? '' : 's'} ${i.keys.map((k) => `'${k}'`).join(', ')}`;
    return source.issue(path, message);
  });
}
