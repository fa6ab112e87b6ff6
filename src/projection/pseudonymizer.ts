// Keyed pseudonyms for de-identified deliveries: HMAC-SHA256 (RFC 2104, FIPS 180-4) under a per-subscriber key,
// so the same value always gives the same token for one subscriber (records stay linkable) and different tokens
// for another (no cross-subscriber linkage). A token is a valid FHIR id ([A-Za-z0-9\-.]{1,64}, FHIR R4 §2.24.0.1):
// a re-identification code that is not derived from the value in a way anyone without the key can reverse
// (45 CFR 164.514(c)).
import { createHmac } from 'node:crypto';
import { isResourceType } from '../fhir/elements.js';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** 20 bytes = 160 bits of the HMAC → 32 base32 characters. */
const TOKEN_BYTES = 20;

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** `[base/]Type/id[/_history/version]` (FHIR R4 §2.3.0.1 literal references). */
const LITERAL_REF =
  /^(?:[a-z][a-z0-9+.-]*:\/\/[^\s]*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
const URN_UUID = 'urn:uuid:';

/** RFC 4648 base32, lowercase, no padding. */
function base32(bytes: Uint8Array, count: number): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (let i = 0; i < count; i++) {
    buffer = (buffer << 8) | (bytes[i] ?? 0);
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= 0xff;
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31];
  return out;
}

/** An RFC 9562 version-8 (custom) UUID from the first 16 bytes of the HMAC. */
function uuidFrom(bytes: Uint8Array): string {
  const b = Uint8Array.from(bytes.subarray(0, 16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x80;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Buffer.from(b).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Returns a function mapping a value to its token:
 * - a UUID → a UUID-shaped token (so an id that is a UUID and `urn:uuid:` references to it stay linkable);
 * - any other string → 32 lowercase base32 characters;
 * - a literal reference `[base/]Type/id[/_history/v]` → `Type/<token of id>` (same token as the pseudonymised
 *   `id` of the target; base and version are dropped);
 * - `urn:uuid:<uuid>` → `urn:uuid:<token>`; a local reference `#id` → `#<token of id>`.
 * The key must be at least 16 bytes (TypeError otherwise: a caller mistake).
 */
export function pseudonymizer(key: Uint8Array): (value: string) => string {
  if (!(key instanceof Uint8Array) || key.length < 16)
    throw new TypeError('pseudonymizer: key must be a Uint8Array of at least 16 bytes');
  const k = Buffer.from(key);
  const token = (value: string): string => {
    const mac = createHmac('sha256', k).update(value, 'utf8').digest();
    return UUID.test(value) ? uuidFrom(mac) : base32(mac, TOKEN_BYTES);
  };
  return (value: string): string => {
    if (value.startsWith(URN_UUID)) {
      const rest = value.slice(URN_UUID.length);
      if (UUID.test(rest)) return URN_UUID + token(rest);
    } else if (value.startsWith('#') && value.length > 1) {
      return '#' + token(value.slice(1));
    } else {
      const m = LITERAL_REF.exec(value);
      if (m !== null && m[1] !== undefined && m[2] !== undefined && isResourceType(m[1]))
        return `${m[1]}/${token(m[2])}`;
    }
    return token(value);
  };
}
