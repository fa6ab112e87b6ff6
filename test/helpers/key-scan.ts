// What "no private key on disk" means in tests: every private value in a keys dir's plain files (each JWK `d`, the
// broker secrets), as base64url text and as raw bytes, searched for in every file under a directory.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Needle {
  readonly what: string;
  readonly bytes: Buffer;
}

function needlesOf(what: string, b64url: string): Needle[] {
  return [
    { what: `${what} (base64url)`, bytes: Buffer.from(b64url, 'utf8') },
    { what: `${what} (raw)`, bytes: Buffer.from(b64url, 'base64url') },
  ];
}

/** The private values of plain key files (`*.json` but jwks.json) in `keysDir`; none read means a broken test. */
export function privateNeedles(keysDir: string): Needle[] {
  const out: Needle[] = [];
  for (const name of readdirSync(keysDir)) {
    if (!name.endsWith('.json') || name === 'jwks.json') continue;
    const json = JSON.parse(readFileSync(join(keysDir, name), 'utf8')) as {
      keys?: { kid: string; d: string }[];
      d?: string;
      quarantineKey?: string;
      quarantineKeys?: { version: number; key?: string }[];
      pseudonymKey?: string;
    };
    for (const k of json.keys ?? []) out.push(...needlesOf(`${name} ${k.kid}.d`, k.d));
    if (json.d !== undefined) out.push(...needlesOf(`${name} d`, json.d));
    if (json.quarantineKey !== undefined) out.push(...needlesOf(`${name} quarantineKey`, json.quarantineKey));
    for (const q of json.quarantineKeys ?? [])
      if (q.key !== undefined) out.push(...needlesOf(`${name} quarantine:${q.version}.key`, q.key));
    if (json.pseudonymKey !== undefined) out.push(...needlesOf(`${name} pseudonymKey`, json.pseudonymKey));
  }
  return out;
}

/** Every regular file under `root`, recursively. */
export function allFiles(root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    const st = statSync(path);
    if (st.isDirectory()) out.push(...allFiles(path));
    else if (st.isFile()) out.push(path);
  }
  return out;
}

/** `<file>: <what>` for each needle found in a file under `root`; empty when none is. */
export function findNeedles(root: string, needles: readonly Needle[]): string[] {
  const hits: string[] = [];
  for (const file of allFiles(root)) {
    const content = readFileSync(file);
    for (const n of needles) if (content.indexOf(n.bytes) >= 0) hits.push(`${file}: ${n.what}`);
  }
  return hits;
}
