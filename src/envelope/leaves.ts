// Per-leaf sealing of a FHIR resource (DESIGN.md wire-format property 1). Every JSON leaf (string, number, boolean,
// null) is encrypted on its own with XChaCha20-Poly1305 under the message's data key and replaced by the string
// base64url(nonce || ciphertext); plaintext = the leaf's JSON text, so its type round-trips, and a number's text is
// its lexeme (a JsonNumber opens from it and seals back to it, byte for byte). Object keys, array
// lengths and the plaintext allow-list stay readable (docs/wire-format.md, "Plaintext allow-list"):
//   - `resourceType` of the root (it equals the envelope's plaintext `typ`) and of every nested object whose
//     resourceType names an R4 resource (contained resources, Bundle entries, Parameters resources);
//   - in such a resource's `meta`: the `profile` array when it is an array of canonical URLs (all or nothing), and
//     the `system` and `code` members (JSON primitives) of each object in the `security` array — the policy label.
// Everything else is sealed, including the other members of a security coding (display, version, userSelected, id,
// extension), `meta.tag` and extensions. The rule depends only on positions, on resourceType values and on whether
// the profile array holds canonical URLs, all of which both sides see in plaintext — a sealed leaf is base64url,
// never an R4 type name nor a URL (no ':') — so sealer and opener always agree on which leaves are sealed.
// Errors name the element path through shownPath: a key that does not look like a FHIR element name is `[?]`.
import type { LeafCipher } from '../crypto/aead-text.js';
import type { RandomSource } from '../crypto/random.js';
import { BrokerError } from '../wire/errors.js';
import { JSON_NUMBER, JsonNumber, isJsonNumber, numberLexeme } from '../wire/json.js';
import { isResourceType } from '../fhir/elements.js';
import { isSimpleKey, shownPath } from './aad.js';
import type { TextOut } from './text-out.js';

export interface LeafContext {
  /** The message's data key with the AAD frame `v1|<id>|` … `|<dk>` (src/envelope/aad.ts); it holds the path between. */
  readonly cipher: LeafCipher;
  readonly random: RandomSource;
}

/** Sealing also writes: the envelope's JSON text goes to `out`. */
export interface SealContext extends LeafContext {
  readonly out: TextOut;
}

type Json = null | string | number | boolean | JsonNumber | Json[] | { [key: string]: Json };

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function isResourceObject(obj: Record<string, unknown>): boolean {
  const t = obj['resourceType'];
  return typeof t === 'string' && isResourceType(t);
}

/* ------------------------------------------------------------------ sealing: value → JSON text with sealed leaves */

function leafText(value: unknown, ctx: LeafContext): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number': {
      const lexeme = numberLexeme(value);
      if (lexeme !== undefined) return lexeme;
      break;
    }
    case 'object':
      if (value === null) return 'null';
      if (isJsonNumber(value)) {
        const lexeme = numberLexeme(value);
        if (lexeme !== undefined) return lexeme;
      }
      break;
    default:
  }
  throw new TypeError(
    `sealEnvelope: the value at ${shownPath(ctx.cipher.middle())} is not JSON (undefined, non-finite number, bigint, function or symbol)`,
  );
}

/**
 * Enters member `key` in the AAD path the cipher holds, in childPath's form (src/envelope/aad.ts): `.key` for a
 * simple key, `["key"]` otherwise. Returns the mark to leave it by (LeafCipher.truncateMiddle).
 */
function enterKey(ctx: LeafContext, key: string, simple: boolean): number {
  return simple ? ctx.cipher.appendMiddle(key, 0x2e) : ctx.cipher.appendMiddle(`[${JSON.stringify(key)}]`);
}

function sealLeaf(ctx: SealContext, value: unknown): void {
  ctx.out.quoted(
    typeof value === 'string'
      ? ctx.cipher.sealJsonString(value, ctx.random)
      : ctx.cipher.seal(leafText(value, ctx), ctx.random),
  );
}

/** Seals `value`, whose path the cipher holds. */
function sealNode(ctx: SealContext, value: unknown): void {
  if (value === null || typeof value !== 'object' || isJsonNumber(value)) return sealLeaf(ctx, value);
  if (Array.isArray(value)) {
    ctx.out.byte(0x5b); // [
    for (let i = 0; i < value.length; i++) {
      const mark = ctx.cipher.appendIndex(i);
      if (i > 0) ctx.out.byte(0x2c); // ,
      sealNode(ctx, value[i]);
      ctx.cipher.truncateMiddle(mark);
    }
    return ctx.out.byte(0x5d); // ]
  }
  if (!isPlainObject(value))
    throw new TypeError(`sealEnvelope: the value at ${shownPath(ctx.cipher.middle())} is not a plain JSON object`);
  sealObject(ctx, value, isResourceObject(value) ? 'resource' : 'plain');
}

type ObjectMode = 'plain' | 'resource' | 'meta' | 'coding';

/** `meta.profile` values that may stay readable: absolute http(s), urn:uuid or urn:oid URLs, optional `|version`. */
const CANONICAL_URL = /^(?:https?:\/\/|urn:uuid:|urn:oid:)[\x21-\x7e]{1,1000}$/;

/** Whether a `meta.profile` array stays plaintext: every member a canonical URL. A sealed leaf never is one. */
function isCanonicalList(list: unknown[]): boolean {
  for (const v of list) if (typeof v !== 'string' || !CANONICAL_URL.test(v)) return false;
  return true;
}

/** Whether `obj[key]` (obj in `mode`) is a plaintext leaf. */
function isPlainLeaf(mode: ObjectMode, key: string, v: unknown): boolean {
  return (
    mode === 'coding' &&
    (key === 'system' || key === 'code') &&
    (v === null || typeof v !== 'object' || isJsonNumber(v))
  );
}

function sealObject(ctx: SealContext, obj: Record<string, unknown>, mode: ObjectMode): void {
  const out = ctx.out;
  out.byte(0x7b); // {
  let first = true;
  for (const k in obj) {
    if (!Object.hasOwn(obj, k)) continue; // own enumerable keys in Object.keys order
    const v = obj[k];
    if (v === undefined) continue; // as JSON.stringify does
    if (!first) out.byte(0x2c); // ,
    first = false;
    // A simple key is its own JSON string body and is written after a dot in the path (aad.ts childPath).
    const simple = isSimpleKey(k);
    if (simple) out.quoted(k);
    else out.text(JSON.stringify(k));
    out.byte(0x3a); // :
    const mark = enterKey(ctx, k, simple);
    if (mode === 'resource' && k === 'resourceType') out.text(JSON.stringify(v));
    else if (mode === 'resource' && k === 'meta' && isObj(v)) sealObject(ctx, v, 'meta');
    else if (mode === 'meta' && k === 'profile' && Array.isArray(v) && isCanonicalList(v)) out.text(JSON.stringify(v));
    else if (mode === 'meta' && k === 'security' && Array.isArray(v)) sealSecurity(ctx, v);
    else if (isPlainLeaf(mode, k, v)) out.text(leafText(v, ctx));
    else sealNode(ctx, v);
    ctx.cipher.truncateMiddle(mark);
  }
  out.byte(0x7d); // }
}

function sealSecurity(ctx: SealContext, list: unknown[]): void {
  ctx.out.byte(0x5b); // [
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    const mark = ctx.cipher.appendIndex(i);
    if (i > 0) ctx.out.byte(0x2c); // ,
    if (isObj(v)) sealObject(ctx, v, 'coding');
    else sealNode(ctx, v);
    ctx.cipher.truncateMiddle(mark);
  }
  ctx.out.byte(0x5d); // ]
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && isPlainObject(v);
}

/**
 * Writes the resource as JSON text with every non-allow-listed leaf sealed to `ctx.out`. `rootPath` is its
 * resourceType (= typ).
 */
export function sealResource(ctx: SealContext, resource: Record<string, unknown>, rootPath: string): void {
  const mark = ctx.cipher.appendMiddle(rootPath);
  sealObject(ctx, resource, 'resource');
  ctx.cipher.truncateMiddle(mark);
}

/* ------------------------------------------------------------------ opening: parsed sealed tree → resource */

// Errors name the path the cipher holds, through shownPath (built only when an error is).
function invalidAt(ctx: LeafContext, expected: string): BrokerError {
  const shown = shownPath(ctx.cipher.middle());
  return new BrokerError('E_ENVELOPE_INVALID', `envelope body at ${shown}: expected ${expected}`, { path: shown });
}

function decryptFailed(ctx: LeafContext): BrokerError {
  const shown = shownPath(ctx.cipher.middle());
  return new BrokerError('E_DECRYPT', `${shown} could not be decrypted or authenticated`, { path: shown });
}

function openLeaf(ctx: LeafContext, sealed: string): Json {
  const text = ctx.cipher.open(sealed);
  if (text === undefined) throw decryptFailed(ctx);
  // A number keeps the lexeme the sender sealed (never a Number() round trip).
  if (JSON_NUMBER.test(text)) return new JsonNumber(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidAt(ctx, 'a sealed JSON leaf');
  }
  if (value !== null && typeof value === 'object') throw invalidAt(ctx, 'a sealed JSON leaf, not an object or array');
  if (typeof value === 'number') throw invalidAt(ctx, 'a sealed JSON leaf: a number exactly as its lexeme');
  return value as Json;
}

/** Opens `node`, whose path the cipher holds. */
function openNode(ctx: LeafContext, node: unknown): Json {
  if (typeof node === 'string') return openLeaf(ctx, node);
  if (node === null || typeof node !== 'object' || isJsonNumber(node))
    throw invalidAt(ctx, 'a sealed leaf (string), object or array');
  if (Array.isArray(node)) {
    const out: Json[] = new Array<Json>(node.length);
    for (let i = 0; i < node.length; i++) {
      const mark = ctx.cipher.appendIndex(i);
      out[i] = openNode(ctx, node[i]);
      ctx.cipher.truncateMiddle(mark);
    }
    return out;
  }
  const obj = node as Record<string, unknown>;
  return openObject(ctx, obj, isResourceObject(obj) ? 'resource' : 'plain');
}

function put(out: Record<string, Json>, k: string, v: Json): void {
  if (k === '__proto__')
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  else out[k] = v;
}

function openObject(ctx: LeafContext, obj: Record<string, unknown>, mode: ObjectMode): { [key: string]: Json } {
  const out: Record<string, Json> = {};
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    const mark = enterKey(ctx, k, isSimpleKey(k));
    if (mode === 'resource' && k === 'resourceType') put(out, k, v as string);
    else if (mode === 'resource' && k === 'meta' && isObj(v)) put(out, k, openObject(ctx, v, 'meta'));
    else if (mode === 'meta' && k === 'profile' && Array.isArray(v) && isCanonicalList(v))
      put(out, k, [...(v as string[])]);
    else if (mode === 'meta' && k === 'security' && Array.isArray(v)) put(out, k, openSecurity(ctx, v));
    else if (isPlainLeaf(mode, k, v)) put(out, k, v as Json);
    else put(out, k, openNode(ctx, v));
    ctx.cipher.truncateMiddle(mark);
  }
  return out;
}

function openSecurity(ctx: LeafContext, list: unknown[]): Json[] {
  const out: Json[] = new Array<Json>(list.length);
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    const mark = ctx.cipher.appendIndex(i);
    out[i] = isObj(v) ? openObject(ctx, v, 'coding') : openNode(ctx, v);
    ctx.cipher.truncateMiddle(mark);
  }
  return out;
}

/** The resource with every sealed leaf decrypted and checked against its path, message and data key. */
export function openResource(
  ctx: LeafContext,
  body: Record<string, unknown>,
  rootPath: string,
): { [key: string]: Json } {
  const mark = ctx.cipher.appendMiddle(rootPath);
  const out = openObject(ctx, body, 'resource');
  ctx.cipher.truncateMiddle(mark);
  return out;
}
