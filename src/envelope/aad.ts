// Associated data of the envelope's AEADs (XChaCha20-Poly1305, src/crypto/aead.ts). Binding each ciphertext to its
// message, element path and key is what makes moving, swapping or replaying a ciphertext fail (DESIGN.md property 3).
//   leaf:  UTF-8("v1|" + id + "|" + path + "|" + dk)
//   wrap:  UTF-8("v1-wrap|" + id + "|" + to + "|" + kek + "|" + dk)
// id, dk, service ids and kids never contain "|" (their patterns forbid it), so each field is recoverable.
// Element paths are concrete JSON paths rooted at the resource type: `Patient.name[0].given[1]`; an object key that is
// not an identifier ([A-Za-z_$][A-Za-z0-9_$-]*) is written as a JSON string in brackets: `Patient["a.b"]`.
// An AAD path holds every key exactly as the sender wrote it — possibly PHI — so it never goes into an error:
// errors carry `shownPath(path)`, which shows only keys that look like FHIR element names (src/fhir/json-path.ts).
import { formatPath } from '../fhir/json-path.js';

/**
 * Whether `key` is written after a dot (`[A-Za-z_$][A-Za-z0-9_$-]*`): a scan of its characters, cheaper than the
 * regular expression on the hot path (every key of every object of every sealing and opening). Such a key is
 * also its own JSON string body (no character JSON escapes), which sealing relies on.
 */
export function isSimpleKey(key: string): boolean {
  const n = key.length;
  if (n === 0) return false;
  let c = key.charCodeAt(0);
  if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 36)) return false;
  for (let i = 1; i < n; i++) {
    c = key.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 36 || c === 45))
      return false;
  }
  return true;
}

export function childPath(parent: string, key: string): string {
  return isSimpleKey(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

export function indexPath(parent: string, index: number): string {
  return `${parent}[${index}]`;
}

/** The leaf AAD as text (its UTF-8 bytes are the AAD). The hot path writes the same bytes piecewise: LeafCipher holds prefix and suffix, leaves.ts builds the path between. */
export function leafAadText(id: string, path: string, dk: string): string {
  return `${leafAadPrefix(id)}${path}${leafAadSuffix(dk)}`;
}

/** What comes before the path in every leaf AAD of message `id` (written once per message by LeafCipher). */
export function leafAadPrefix(id: string): string {
  return `v1|${id}|`;
}

/** What comes after the path in every leaf AAD under data key `dk`. */
export function leafAadSuffix(dk: string): string {
  return `|${dk}`;
}

export function leafAad(id: string, path: string, dk: string): Uint8Array {
  return Buffer.from(leafAadText(id, path, dk), 'utf8');
}

/** The wrap AAD as text (its UTF-8 bytes are the AAD). */
export function wrapAadText(id: string, to: string, kek: string, dk: string): string {
  return `v1-wrap|${id}|${to}|${kek}|${dk}`;
}

export function wrapAad(id: string, to: string, kek: string, dk: string): Uint8Array {
  return Buffer.from(wrapAadText(id, to, kek, dk), 'utf8');
}

const DOT_KEY = /\.([A-Za-z_$][A-Za-z0-9_$-]*)/y;
const INDEX = /\[(0|[1-9][0-9]*)\]/y;
const QUOTED_KEY = /\[("(?:[^"\\]|\\.)*")\]/y;

/**
 * The AAD path `path` as it may appear in an error message or an error's `path`: the same segments, formatted by
 * formatPath, so a key that does not look like a FHIR element name becomes `[?]` (`Patient["John Smith"]` →
 * `Patient.[?]`). Runs only when an error is built: the hot path never pays for it.
 */
export function shownPath(path: string): string {
  const start = path.search(/[.[]/);
  if (start < 0) return formatPath([path]);
  const segments: (string | number)[] = [path.slice(0, start)];
  let i = start;
  while (i < path.length) {
    let m: RegExpExecArray | null;
    DOT_KEY.lastIndex = INDEX.lastIndex = QUOTED_KEY.lastIndex = i;
    if ((m = DOT_KEY.exec(path)) !== null) segments.push(m[1] as string);
    else if ((m = INDEX.exec(path)) !== null) segments.push(Number(m[1]));
    else if ((m = QUOTED_KEY.exec(path)) !== null) segments.push(JSON.parse(m[1] as string) as string);
    else {
      segments.push('?'); // not a path childPath/indexPath built: show nothing of the rest
      break;
    }
    i += m[0].length;
  }
  return formatPath(segments);
}
