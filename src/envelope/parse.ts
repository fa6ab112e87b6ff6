// Strict structural parse of an envelope (docs/wire-format.md, "Envelope fields"): UTF-8 JSON object with exactly the
// v1 fields, each checked for type and shape. Not JSON (or not UTF-8) → E_JSON_MALFORMED; a duplicate member name or
// anything else wrong → E_ENVELOPE_INVALID naming the field path. Numbers keep their lexemes (src/wire/json.ts). The body's leaves are checked when opened (src/envelope/leaves.ts).
// Parsing proves nothing about the sender: verify the signature over the same bytes (open.ts) before trusting it.
import { base64urlLength } from '../crypto/base64url.js';
import { NONCE_BYTES, TAG_BYTES } from '../crypto/aead.js';
import { isEncKekId } from '../crypto/kek.js';
import { parseKid } from '../crypto/keypairs.js';
import { SERVICE_ID_PATTERN } from '../wire/ids.js';
import { BrokerError } from '../wire/errors.js';
import { isJsonNumber, parseJsonText } from '../wire/json.js';
import { formatPath } from '../fhir/json-path.js';
import { DATA_KEY_ID_PATTERN, MAX_RECIPIENTS, type Envelope, type Provenance, type WrappedKey } from './types.js';
import { MESSAGE_ID_PATTERN, RAW_TYPE, TYPE_PATTERN } from '../wire/ids.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const WK_LENGTH = base64urlLength(NONCE_BYTES + 32 + TAG_BYTES);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const HASH_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const PURPOSE_PATTERN = /^[A-Z][A-Z0-9_-]{0,31}$/;
const MAX_PROFILE_URL = 1024;
const SIGNING_KID_PATTERN = /^[a-z][a-z0-9-]{0,62}:sig:[1-9][0-9]{0,8}$/;

const FIELDS = new Set(['v', 'id', 'iss', 'iat', 'typ', 'kid', 'dk', 'keys', 'prov', 'body']);
const KEY_FIELDS = new Set(['to', 'kek', 'wk']);
const PROV_FIELDS = new Set(['src', 'mid', 'hash', 'profile', 'purpose', 'at']);

function invalid(path: string, expected: string): BrokerError {
  return new BrokerError('E_ENVELOPE_INVALID', `envelope field ${path}: expected ${expected}`, { path });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !isJsonNumber(v);
}

/** Refuses members outside `allowed`; the path shows an unknown key only if it looks like an element name. */
function onlyFields(
  obj: Record<string, unknown>,
  allowed: ReadonlySet<string>,
  at: readonly (string | number)[],
): void {
  for (const k of Object.keys(obj)) if (!allowed.has(k)) throw invalid(formatPath([...at, k]), 'no such field');
}

/**
 * A copy of `s` that does not hold the text it was parsed from. V8 keeps a slice of a long string as a reference into
 * it (a sliced string, V8 issue 2869), so a header field kept after its message (the registry's recent message ids,
 * the SDK's duplicate filter) would keep the whole envelope text alive; the concatenation is copied when sliced.
 */
function own(s: string): string {
  return (' ' + s).slice(1);
}

function str(obj: Record<string, unknown>, key: string, path: string, pattern: RegExp, expected: string): string {
  const v = obj[key];
  if (typeof v !== 'string' || !pattern.test(v)) throw invalid(path, expected);
  return own(v);
}

const EPOCH_MS = /^(?:0|[1-9][0-9]{0,15})$/;

function time(obj: Record<string, unknown>, key: string, path: string): number {
  const v = obj[key];
  const n = isJsonNumber(v) && EPOCH_MS.test(v.value) ? Number(v.value) : -1;
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(path, 'milliseconds since the epoch (non-negative integer)');
  return n;
}

function parseKeys(value: unknown): WrappedKey[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_RECIPIENTS)
    throw invalid('keys', `an array of 1 to ${MAX_RECIPIENTS} wrapped keys`);
  const seen = new Set<string>();
  return value.map((entry: unknown, i) => {
    const p = `keys[${i}]`;
    if (!isRecord(entry)) throw invalid(p, 'an object { to, kek, wk }');
    onlyFields(entry, KEY_FIELDS, ['keys', i]);
    const to = str(entry, 'to', `${p}.to`, SERVICE_ID_PATTERN, 'a service id');
    if (seen.has(to)) throw invalid(`${p}.to`, 'one wrapped key per recipient');
    seen.add(to);
    const kek = entry['kek'];
    if (typeof kek !== 'string' || !isEncKekId(kek)) throw invalid(`${p}.kek`, 'a KEK id <enc kid>~<enc kid>, sorted');
    const wk = str(entry, 'wk', `${p}.wk`, BASE64URL, `base64url of ${NONCE_BYTES + 32 + TAG_BYTES} bytes`);
    if (wk.length !== WK_LENGTH) throw invalid(`${p}.wk`, `base64url of ${NONCE_BYTES + 32 + TAG_BYTES} bytes`);
    return { to, kek: own(kek), wk };
  });
}

function parseProv(value: unknown): Provenance {
  if (!isRecord(value)) throw invalid('prov', 'an object');
  onlyFields(value, PROV_FIELDS, ['prov']);
  const prov: { -readonly [K in keyof Provenance]: Provenance[K] } = {
    src: str(value, 'src', 'prov.src', SERVICE_ID_PATTERN, 'a service id'),
    mid: str(value, 'mid', 'prov.mid', MESSAGE_ID_PATTERN, 'a message id'),
    hash: str(value, 'hash', 'prov.hash', HASH_PATTERN, 'SHA-256 in base64url (43 characters)'),
    at: time(value, 'at', 'prov.at'),
  };
  if ('profile' in value) {
    const profile = value['profile'];
    if (
      typeof profile !== 'string' ||
      profile.length === 0 ||
      profile.length > MAX_PROFILE_URL ||
      !/^[\x21-\x7e]+$/.test(profile)
    ) {
      throw invalid('prov.profile', 'a canonical URL');
    }
    prov.profile = own(profile);
  }
  if ('purpose' in value) prov.purpose = str(value, 'purpose', 'prov.purpose', PURPOSE_PATTERN, 'a PurposeOfUse code');
  return prov;
}

/** Decodes and structurally checks envelope bytes. */
export function parseEnvelope(bytes: Uint8Array): Envelope {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new BrokerError('E_JSON_MALFORMED', 'the message is not well-formed UTF-8 JSON');
  }
  const parsed = parseJsonText(text);
  if ('fault' in parsed) {
    if (parsed.fault.kind === 'syntax')
      throw new BrokerError('E_JSON_MALFORMED', 'the message is not well-formed UTF-8 JSON');
    throw invalid(formatPath(parsed.fault.segments), 'one member of this name (duplicate member, RFC 7493 §2.3)');
  }
  const json = parsed.value;
  if (!isRecord(json)) throw invalid('$', 'a JSON object');
  onlyFields(json, FIELDS, []);
  const v = json['v'];
  if (!isJsonNumber(v) || v.value !== '1') throw invalid('v', 'version 1');
  const id = str(json, 'id', 'id', MESSAGE_ID_PATTERN, 'a message id');
  const iss = str(json, 'iss', 'iss', SERVICE_ID_PATTERN, 'a service id');
  const iat = time(json, 'iat', 'iat');
  const typ = str(json, 'typ', 'typ', TYPE_PATTERN, 'a FHIR resource type or $raw');
  const kid = str(json, 'kid', 'kid', SIGNING_KID_PATTERN, 'a signing key id <service>:sig:<n>');
  // A key of another service can never authenticate this issuer: a signature failure, not a shape error.
  if (parseKid(kid)?.service !== iss)
    throw new BrokerError('E_SIGNATURE', 'envelope field kid: the signing key does not belong to the issuer', {
      path: 'kid',
    });
  const dk = str(json, 'dk', 'dk', DATA_KEY_ID_PATTERN, 'a data key id');
  const keys = parseKeys(json['keys']);
  const body = json['body'];
  if (typ === RAW_TYPE) {
    if (typeof body !== 'string') throw invalid('body', 'one sealed value (raw mode)');
  } else {
    if (!isRecord(body)) throw invalid('body', 'a sealed resource object');
    if (body['resourceType'] !== typ) throw invalid('body.resourceType', 'the resource type named by typ');
  }
  const env: Envelope = { v: 1, id, iss, iat, typ, kid, dk, keys, body: body as Envelope['body'] };
  return 'prov' in json ? { ...env, prov: parseProv(json['prov']) } : env;
}
