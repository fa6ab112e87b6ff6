// Per-leaf sealing of a FHIR resource (DESIGN.md wire-format property 1). Every JSON leaf (string, number, boolean,
// null) is encrypted on its own with XChaCha20-Poly1305 under the message's data key and replaced by the string
// base64url(nonce || ciphertext); plaintext = the leaf's JSON text, so its type round-trips. Object keys, array
// lengths and the plaintext allow-list stay readable:
//   - `resourceType` of the root (it equals the envelope's plaintext `typ`) and of every nested object whose
//     resourceType names an R4 resource (contained resources, Bundle entries, Parameters resources);
//   - in such a resource's `meta`: each leaf of the `profile` array and each leaf child of each `security` coding.
// The rule depends only on positions and on resourceType values, which both sides see in plaintext, so sealer and
// opener always agree on which leaves are sealed. Anything else, including `meta.tag` and extensions, is sealed.
import { fromBase64url } from '../crypto/base64url.js';
import { openBlobText, sealBlobBase64url } from '../crypto/aead.js';
import type { RandomSource } from '../crypto/random.js';
import { BrokerError } from '../errors.js';
import { isResourceType } from '../fhir/elements.js';
import { childPath, indexPath, leafAad } from './aad.js';

export interface LeafContext {
  readonly id: string;
  readonly dk: string;
  readonly key: Uint8Array;
  readonly random: RandomSource;
}

type Json = null | string | number | boolean | Json[] | { [key: string]: Json };

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function isResourceObject(obj: Record<string, unknown>): boolean {
  const t = obj['resourceType'];
  return typeof t === 'string' && isResourceType(t);
}

/* ------------------------------------------------------------------ sealing: value → JSON text with sealed leaves */

function leafText(value: unknown, path: string): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (Number.isFinite(value)) return JSON.stringify(value);
      break;
    case 'object':
      if (value === null) return 'null';
      break;
    default:
  }
  throw new TypeError(`sealEnvelope: the value at ${path} is not JSON (undefined, non-finite number, bigint, function or symbol)`);
}

function sealLeaf(ctx: LeafContext, value: unknown, path: string): string {
  const plaintext = Buffer.from(leafText(value, path), 'utf8');
  return `"${sealBlobBase64url(ctx.key, plaintext, leafAad(ctx.id, path, ctx.dk), ctx.random)}"`;
}

function sealNode(ctx: LeafContext, value: unknown, path: string): string {
  if (value === null || typeof value !== 'object') return sealLeaf(ctx, value, path);
  if (Array.isArray(value)) {
    let s = '[';
    for (let i = 0; i < value.length; i++) s += (i === 0 ? '' : ',') + sealNode(ctx, value[i], indexPath(path, i));
    return `${s}]`;
  }
  if (!isPlainObject(value)) throw new TypeError(`sealEnvelope: the value at ${path} is not a plain JSON object`);
  return sealObject(ctx, value, path, isResourceObject(value) ? 'resource' : 'plain');
}

type ObjectMode = 'plain' | 'resource' | 'meta' | 'security';

function sealObject(ctx: LeafContext, obj: Record<string, unknown>, path: string, mode: ObjectMode): string {
  let s = '{';
  let first = true;
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    if (v === undefined) continue; // as JSON.stringify does
    const p = childPath(path, k);
    let text: string;
    if (mode === 'resource' && k === 'resourceType') text = JSON.stringify(v);
    else if (mode === 'resource' && k === 'meta' && isObj(v)) text = sealObject(ctx, v, p, 'meta');
    else if (mode === 'meta' && (k === 'profile' || k === 'security') && Array.isArray(v)) text = sealMetaList(ctx, v, p, k);
    else if (mode === 'security' && (v === null || typeof v !== 'object')) text = leafText(v, p);
    else text = sealNode(ctx, v, p);
    s += `${first ? '' : ','}${JSON.stringify(k)}:${text}`;
    first = false;
  }
  return `${s}}`;
}

function sealMetaList(ctx: LeafContext, list: unknown[], path: string, key: 'profile' | 'security'): string {
  let s = '[';
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    const p = indexPath(path, i);
    let text: string;
    if (key === 'profile' && (v === null || typeof v !== 'object')) text = leafText(v, p);
    else if (key === 'security' && isObj(v)) text = sealObject(ctx, v, p, 'security');
    else text = sealNode(ctx, v, p);
    s += (i === 0 ? '' : ',') + text;
  }
  return `${s}]`;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && isPlainObject(v);
}

/** The resource as JSON text with every non-allow-listed leaf sealed. `rootPath` is its resourceType (= typ). */
export function sealResource(ctx: LeafContext, resource: Record<string, unknown>, rootPath: string): string {
  return sealObject(ctx, resource, rootPath, 'resource');
}

/* ------------------------------------------------------------------ opening: parsed sealed tree → resource */

function invalidAt(path: string, expected: string): BrokerError {
  return new BrokerError('E_ENVELOPE_INVALID', `envelope body at ${path}: expected ${expected}`, { path });
}

function openLeaf(ctx: LeafContext, sealed: string, path: string): Json {
  const bytes = fromBase64url(sealed);
  if (bytes === undefined) throw new BrokerError('E_DECRYPT', `${path} could not be decrypted or authenticated`, { path });
  const text = openBlobText(ctx.key, bytes, leafAad(ctx.id, path, ctx.dk), path);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidAt(path, 'a sealed JSON leaf');
  }
  if (value !== null && typeof value === 'object') throw invalidAt(path, 'a sealed JSON leaf, not an object or array');
  return value as Json;
}

function openNode(ctx: LeafContext, node: unknown, path: string): Json {
  if (typeof node === 'string') return openLeaf(ctx, node, path);
  if (node === null || typeof node !== 'object') throw invalidAt(path, 'a sealed leaf (string), object or array');
  if (Array.isArray(node)) {
    const out: Json[] = new Array<Json>(node.length);
    for (let i = 0; i < node.length; i++) out[i] = openNode(ctx, node[i], indexPath(path, i));
    return out;
  }
  const obj = node as Record<string, unknown>;
  return openObject(ctx, obj, path, isResourceObject(obj) ? 'resource' : 'plain');
}

function put(out: Record<string, Json>, k: string, v: Json): void {
  if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  else out[k] = v;
}

function openObject(ctx: LeafContext, obj: Record<string, unknown>, path: string, mode: ObjectMode): { [key: string]: Json } {
  const out: Record<string, Json> = {};
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    const p = childPath(path, k);
    if (mode === 'resource' && k === 'resourceType') put(out, k, v as string);
    else if (mode === 'resource' && k === 'meta' && isObj(v)) put(out, k, openObject(ctx, v, p, 'meta'));
    else if (mode === 'meta' && (k === 'profile' || k === 'security') && Array.isArray(v)) put(out, k, openMetaList(ctx, v, p, k));
    else if (mode === 'security' && (v === null || typeof v !== 'object')) put(out, k, v as Json);
    else put(out, k, openNode(ctx, v, p));
  }
  return out;
}

function openMetaList(ctx: LeafContext, list: unknown[], path: string, key: 'profile' | 'security'): Json[] {
  const out: Json[] = new Array<Json>(list.length);
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    const p = indexPath(path, i);
    if (key === 'profile' && (v === null || typeof v !== 'object')) out[i] = v as Json;
    else if (key === 'security' && isObj(v)) out[i] = openObject(ctx, v, p, 'security');
    else out[i] = openNode(ctx, v, p);
  }
  return out;
}

/** The resource with every sealed leaf decrypted and checked against its path, message and data key. */
export function openResource(ctx: LeafContext, body: Record<string, unknown>, rootPath: string): { [key: string]: Json } {
  return openObject(ctx, body, rootPath, 'resource');
}
