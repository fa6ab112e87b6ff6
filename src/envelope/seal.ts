// Sealing a phi-broker envelope v1 (docs/wire-format.md): one fresh 32-byte data key per message; every PHI leaf
// sealed under it with XChaCha20-Poly1305 (leaves.ts); the data key wrapped for each recipient under the KEK it shares
// with the sender (XChaCha20-Poly1305, AAD binds message, recipient, KEK and data key ids); the UTF-8 JSON bytes
// signed with Ed25519 (RFC 8032). The hot path does one signature and symmetric operations only; nonces and keys come
// from the pooled node:crypto source unless a RandomSource is injected (test vectors).
import { KEY_BYTES } from '../crypto/aead.js';
import { withLeafCipher } from '../crypto/aead-text.js';
import { toBase64url } from '../crypto/base64url.js';
import { isKekId, type Kek } from '../crypto/kek.js';
import { parseKid, type SigningKeyPair } from '../crypto/keypairs.js';
import { randomBytes, type RandomSource } from '../crypto/random.js';
import { signDetached } from '../crypto/sign.js';
import { SERVICE_ID_PATTERN } from '../wire/ids.js';
import { wrapAadText, leafAadPrefix, leafAadSuffix } from './aad.js';
import { sealResource } from './leaves.js';
import { TextOut } from './text-out.js';
import { MAX_RECIPIENTS, isRawPayload, type Provenance, type RawPayload } from './types.js';
import { MESSAGE_ID_PATTERN, RAW_TYPE, TYPE_PATTERN } from '../wire/ids.js';

/** Bytes drawn for the data key id (12 base64url characters). */
const DK_ID_BYTES = 9;

export interface SealRecipient {
  /** Recipient service id. */
  readonly id: string;
  /** KEK shared by the sender's and the recipient's encryption keys (Keyring.kekFor). */
  readonly kek: Kek;
}

export interface SealInput {
  readonly id: string;
  readonly iss: string;
  readonly iat: number;
  /** The resource type (structured mode) or `$raw`. */
  readonly typ: string;
  /** A FHIR resource as parsed JSON (its resourceType must equal typ), or `{ raw }` bytes for raw mode. */
  readonly resource: unknown;
  readonly signer: SigningKeyPair;
  readonly recipients: readonly SealRecipient[];
  readonly prov?: Provenance;
  /** Injected randomness, drawn in this order: data key (32), data key id (9), one 24-byte nonce per recipient in order, one per sealed leaf in document order. */
  readonly random?: RandomSource;
}

export interface SealedEnvelope {
  /** The exact bytes to send. */
  readonly bytes: Uint8Array;
  /** base64url Ed25519 signature of `bytes` (the `Phi-Sig` header). */
  readonly sig: string;
}

/** Signing kids seen, kid → the service a `sig` kid belongs to (undefined: not a signing kid). Pure in the kid; bounded. */
const SIGNING_KIDS = new Map<string, string | undefined>();

function signingKidService(kid: string): string | undefined {
  if (SIGNING_KIDS.has(kid)) return SIGNING_KIDS.get(kid);
  const parsed = parseKid(kid);
  const service = parsed?.use === 'sig' ? parsed.service : undefined;
  if (SIGNING_KIDS.size >= 1024) SIGNING_KIDS.clear();
  SIGNING_KIDS.set(kid, service);
  return service;
}

function checkInput(input: SealInput): void {
  if (!MESSAGE_ID_PATTERN.test(input.id)) throw new TypeError('sealEnvelope: id must match MESSAGE_ID_PATTERN');
  if (!SERVICE_ID_PATTERN.test(input.iss)) throw new TypeError('sealEnvelope: iss must be a service id');
  if (!Number.isSafeInteger(input.iat) || input.iat < 0)
    throw new TypeError('sealEnvelope: iat must be ms since the epoch');
  const kid = input.signer.kid;
  if (typeof kid !== 'string' || signingKidService(kid) !== input.iss)
    throw new TypeError('sealEnvelope: signer must be a signing key of iss');
  const n = input.recipients.length;
  if (n === 0 || n > MAX_RECIPIENTS) throw new TypeError(`sealEnvelope: 1 to ${MAX_RECIPIENTS} recipients`);
  const seen = new Set<string>();
  for (const r of input.recipients) {
    if (!SERVICE_ID_PATTERN.test(r.id) || seen.has(r.id))
      throw new TypeError('sealEnvelope: recipient ids must be distinct service ids');
    seen.add(r.id);
    if (typeof r.kek.id !== 'string' || !isKekId(r.kek.id) || r.kek.key.length !== KEY_BYTES)
      throw new TypeError('sealEnvelope: recipient KEK must be { id: kidA~kidB, key: 32 bytes }');
  }
}

/** JSON.stringify({ src, mid, hash, profile, purpose, at }) of `prov`, member by member (no object to build). */
function provText(prov: Provenance): string {
  // Fixed member order; undefined optional members are left out, as JSON.stringify leaves them out.
  return (
    `{"src":${JSON.stringify(prov.src)},"mid":${JSON.stringify(prov.mid)},"hash":${JSON.stringify(prov.hash)}` +
    (prov.profile === undefined ? '' : `,"profile":${JSON.stringify(prov.profile)}`) +
    (prov.purpose === undefined ? '' : `,"purpose":${JSON.stringify(prov.purpose)}`) +
    `,"at":${JSON.stringify(prov.at)}}`
  );
}

/** Seals, serialises and signs one message. Wrong arguments throw TypeError (programming errors, not bad data). */
export function sealEnvelope(input: SealInput): SealedEnvelope {
  const bytes = sealEnvelopeBytes(input);
  return { bytes, sig: toBase64url(signDetached(bytes, input.signer.secretKey)) };
}

/** The text of the envelope being sealed (sealing is synchronous: one at a time). */
const OUT = new TextOut();

/** Seals and serialises one message, naming `signer.kid`, for the caller to sign (a batch signature, batch-sig.ts). */
export function sealEnvelopeBytes(input: SealInput): Uint8Array {
  checkInput(input);
  const random = input.random ?? randomBytes;
  const raw = input.typ === RAW_TYPE;
  if (raw && !isRawPayload(input.resource))
    throw new TypeError('sealEnvelope: typ $raw needs resource { raw: Uint8Array }');
  const resource = input.resource as Record<string, unknown>;
  if (
    !raw &&
    (!TYPE_PATTERN.test(input.typ) ||
      typeof resource !== 'object' ||
      resource === null ||
      Array.isArray(resource) ||
      resource['resourceType'] !== input.typ)
  ) {
    throw new TypeError(
      'sealEnvelope: typ must be a resource type name equal to resource.resourceType (or $raw with { raw })',
    );
  }

  const dataKey = Uint8Array.from(random(KEY_BYTES));
  const dk = toBase64url(random(DK_ID_BYTES));
  try {
    const out = OUT;
    out.reset();
    out.text(`{"v":1,"id":${JSON.stringify(input.id)},"iss":${JSON.stringify(input.iss)},"iat":${input.iat},`);
    out.text(`"typ":${JSON.stringify(input.typ)},"kid":${JSON.stringify(input.signer.kid)},"dk":"${dk}","keys":[`);
    let first = true;
    for (const r of input.recipients) {
      // The data key sealed in a scratch block that is zeroed afterwards (libsodium-wrappers' sealBlob would leave
      // it, and the KEK, in freed WebAssembly memory); the same bytes as toBase64url(sealBlob(...)).
      const wk = withLeafCipher(r.kek.key, '', '', (wrapper) => {
        wrapper.appendMiddle(wrapAadText(input.id, r.id, r.kek.id, dk));
        return wrapper.sealBytes(dataKey, random);
      });
      out.text(`${first ? '' : ','}{"to":${JSON.stringify(r.id)},"kek":${JSON.stringify(r.kek.id)},"wk":"${wk}"}`);
      first = false;
    }
    out.text(input.prov === undefined ? '],"body":' : `],"prov":${provText(input.prov)},"body":`);
    withLeafCipher(dataKey, leafAadPrefix(input.id), leafAadSuffix(dk), (cipher) => {
      if (!raw) return sealResource({ cipher, random, out }, resource, input.typ);
      // One leaf at path `$raw`: AAD v1|id|$raw|dk, the same bytes as sealBlob(dataKey, raw, leafAad(id, $raw, dk)).
      cipher.appendMiddle(RAW_TYPE);
      out.quoted(cipher.sealBytes((input.resource as RawPayload).raw, random));
    });
    out.byte(0x7d); // }
    return out.bytes();
  } finally {
    dataKey.fill(0);
  }
}
