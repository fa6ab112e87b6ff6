// A right-of-access answer larger than one NATS message, cut into signed parts and checked part by part and whole —
// pure: no NATS here. The protocol and its checks: docs/patient-rights.md#answers-larger-than-one-message.
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { fromBase64url, toBase64url } from '../../crypto/base64url.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { SigningKeyPair } from '../../crypto/keys.js';
import { signDetached, verifyDetached } from '../../crypto/sign.js';
import { BrokerError } from '../../wire/errors.js';
import { decodeJsonBytes, tryDecodeJson } from '../../wire/decode-json.js';

export interface PartsManifest {
  readonly v: 1;
  /** The answer's envelope id, `<question id>.a`. */
  readonly id: string;
  /** The service that answered (signs the manifest and every part). */
  readonly iss: string;
  /** The signing key the manifest and the parts are signed with. */
  readonly kid: string;
  /** SHA-256 (hex) of the whole sealed answer. */
  readonly sha256: string;
  readonly bytes: number;
  readonly parts: number;
  /** The answer envelope's own signature (its Phi-Sig), checked over the reassembled bytes. */
  readonly sig: string;
  /** The one-off subject token the parts are fetched on (subjects.accessPart). */
  readonly token: string;
}

export interface AnswerPart {
  readonly data: Uint8Array;
  /** `k/n` (the Phi-Part header). */
  readonly place: string;
  /** base64url Ed25519 signature (the Phi-Sig header). */
  readonly sig: string;
}

export interface SplitAnswer {
  readonly manifest: { readonly bytes: Uint8Array; readonly sig: string; readonly value: PartsManifest };
  readonly parts: readonly AnswerPart[];
}

/** Room left under max_payload for a part's headers (Phi-Sig, Phi-Part and the NATS/1.0 header block). */
export const PART_HEADROOM = 1024;
/** At most this many parts per answer (with 1 MiB messages: about 100 GB; the broker's maxAnswerBytes binds first). */
export const MAX_PARTS = 100_000;
/** A part request: `{part: k}`, 1-based (zod's int() is a safe integer). */
const partRequestSchema = z.object({ part: z.number().int().min(1) });
const TOKEN = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const MANIFEST_FIELDS = ['v', 'id', 'iss', 'kid', 'sha256', 'bytes', 'parts', 'sig', 'token'];

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** What a part's signature covers: the answer, the part's place and count, and the SHA-256 of its bytes. */
function partInput(id: string, k: number, n: number, data: Uint8Array): Uint8Array {
  return new TextEncoder().encode(`phi-broker access part v1|${id}|${k}|${n}|${sha256(data)}`);
}

/** A fresh one-off token naming where the parts are served (128 random bits, hex: no PHI). */
export function newPartsToken(): string {
  return randomBytes(16).toString('hex');
}

/** The body of a part request: which part (1-based). No PHI. */
export function partRequest(k: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ part: k }));
}

/** Reads a part request's part number; undefined when it is not one. */
export function parsePartRequest(data: Uint8Array): number | undefined {
  const r = tryDecodeJson(data, partRequestSchema, { what: 'part request', code: 'E_ENVELOPE_INVALID' });
  return r.ok ? r.value.part : undefined;
}

/** Splits a sealed answer (bytes and signature as sealAnswerEnvelope made them) into parts of at most `maxPart` bytes. */
export function splitAnswer(a: {
  id: string;
  service: string;
  bytes: Uint8Array;
  sig: string;
  maxPart: number;
  signer: SigningKeyPair;
  token: string;
}): SplitAnswer {
  if (!Number.isSafeInteger(a.maxPart) || a.maxPart < 1)
    throw new TypeError('splitAnswer: maxPart must be a positive integer');
  if (!TOKEN.test(a.token)) throw new TypeError('splitAnswer: token must be 32 hex digits');
  const n = Math.max(1, Math.ceil(a.bytes.length / a.maxPart));
  if (n > MAX_PARTS) throw new TypeError(`splitAnswer: more than ${MAX_PARTS} parts`);
  const parts: AnswerPart[] = [];
  for (let k = 1; k <= n; k++) {
    const data = a.bytes.subarray((k - 1) * a.maxPart, k * a.maxPart);
    parts.push({
      data,
      place: `${k}/${n}`,
      sig: toBase64url(signDetached(partInput(a.id, k, n, data), a.signer.secretKey)),
    });
  }
  const value: PartsManifest = {
    v: 1,
    id: a.id,
    iss: a.service,
    kid: a.signer.kid,
    sha256: sha256(a.bytes),
    bytes: a.bytes.length,
    parts: n,
    sig: a.sig,
    token: a.token,
  };
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  return { manifest: { bytes, sig: toBase64url(signDetached(bytes, a.signer.secretKey)), value }, parts };
}

function manifestInvalid(path: string, expected: string): BrokerError {
  return new BrokerError('E_ENVELOPE_INVALID', `access answer manifest field ${path}: expected ${expected}`, {
    path: `manifest.${path}`,
  });
}

function verifyWith(
  keyring: Keyring,
  kid: string,
  bytes: Uint8Array,
  sig: string | undefined,
  what: string,
  path?: string,
): void {
  const raw = sig === undefined ? undefined : fromBase64url(sig);
  if (raw === undefined || !verifyDetached(bytes, raw, keyring.signingPublicKey(kid))) {
    throw new BrokerError(
      'E_SIGNATURE',
      `${what} signature is missing, malformed or does not verify`,
      path === undefined ? undefined : { path },
    );
  }
}

/**
 * The broker's check of a manifest: well formed, from the service asked, answering this question, signed by a key of
 * that service, and no larger than `maxBytes` (E_TOO_LARGE).
 */
export function openManifest(
  data: Uint8Array,
  sig: string | undefined,
  keyring: Keyring,
  expected: { questionId: string; service: string; maxBytes: number },
): PartsManifest {
  const json = decodeJsonBytes(data, { what: 'access answer manifest' });
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw manifestInvalid('(root)', 'an object');
  const m = json as Record<string, unknown>;
  const extra = Object.keys(m).find((k) => !MANIFEST_FIELDS.includes(k));
  if (extra !== undefined) throw manifestInvalid('(root)', `only the fields ${MANIFEST_FIELDS.join(', ')}`);
  if (m['v'] !== 1) throw manifestInvalid('v', '1');
  if (typeof m['iss'] !== 'string') throw manifestInvalid('iss', 'a service id');
  if (typeof m['kid'] !== 'string') throw manifestInvalid('kid', 'a signing key id');
  // Who signed it first, before anything else it says is trusted.
  if (keyring.ownerOf(m['kid']) !== m['iss'])
    throw new BrokerError('E_SIGNATURE', 'access answer manifest key does not belong to the issuer', {
      path: 'manifest.kid',
    });
  verifyWith(keyring, m['kid'], data, sig, 'access answer manifest');
  if (m['iss'] !== expected.service)
    throw new BrokerError('E_SENDER_MISMATCH', 'access answer is not from the service asked', { path: 'manifest.iss' });
  if (m['id'] !== `${expected.questionId}.a`)
    throw new BrokerError('E_ENVELOPE_INVALID', 'access answer does not answer this question', { path: 'manifest.id' });
  if (typeof m['sha256'] !== 'string' || !HEX64.test(m['sha256']))
    throw manifestInvalid('sha256', '64 lower-case hex digits');
  const bytes = m['bytes'];
  const parts = m['parts'];
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 1)
    throw manifestInvalid('bytes', 'a positive integer');
  if (bytes > expected.maxBytes)
    throw new BrokerError('E_TOO_LARGE', `access answer of ${bytes} bytes exceeds the limit of ${expected.maxBytes}`, {
      path: 'manifest.bytes',
    });
  if (typeof parts !== 'number' || !Number.isSafeInteger(parts) || parts < 1 || parts > Math.min(bytes, MAX_PARTS))
    throw manifestInvalid('parts', `an integer from 1 to min(bytes, ${MAX_PARTS})`);
  if (typeof m['sig'] !== 'string' || fromBase64url(m['sig']) === undefined)
    throw manifestInvalid('sig', 'a base64url signature');
  if (typeof m['token'] !== 'string' || !TOKEN.test(m['token'])) throw manifestInvalid('token', '32 hex digits');
  return m as unknown as PartsManifest;
}

/** Collects the parts of one answer, checking each on arrival and the whole at the end. */
export class PartsAssembly {
  private readonly chunks: Uint8Array[] = [];
  private received = 0;

  constructor(
    private readonly manifest: PartsManifest,
    private readonly keyring: Keyring,
  ) {}

  /** The place of the next part wanted (1-based), or undefined once all have arrived. */
  get next(): number | undefined {
    return this.chunks.length < this.manifest.parts ? this.chunks.length + 1 : undefined;
  }

  /** Adds part `k` (the one asked for): E_ACCESS_PARTS when it is another place or overruns, E_SIGNATURE when its signature fails. */
  add(k: number, data: Uint8Array, place: string | undefined, sig: string | undefined): void {
    const { id, parts: n, bytes, kid } = this.manifest;
    if (k !== this.next) throw new TypeError('PartsAssembly.add: parts are added in order');
    if (place !== `${k}/${n}`)
      throw new BrokerError('E_ACCESS_PARTS', `part ${k}/${n}: the reply is marked as another part`, {
        path: `part[${k}]`,
      });
    verifyWith(this.keyring, kid, partInput(id, k, n, data), sig, `access answer part ${k}/${n}`, `part[${k}]`);
    if (data.length === 0 || this.received + data.length > bytes)
      throw new BrokerError(
        'E_ACCESS_PARTS',
        `part ${k}/${n}: the parts are longer than the ${bytes} bytes the manifest declared`,
        { path: `part[${k}]` },
      );
    this.chunks.push(data.slice());
    this.received += data.length;
  }

  /** The whole answer, once every part has arrived and it has the length and SHA-256 the manifest declared. */
  assemble(): Uint8Array {
    const { parts: n, bytes } = this.manifest;
    if (this.chunks.length !== n)
      throw new BrokerError('E_ACCESS_PARTS', `${this.chunks.length} of ${n} parts received`, {
        path: `part[${this.chunks.length + 1}]`,
      });
    const whole = new Uint8Array(this.received);
    let at = 0;
    for (const c of this.chunks) {
      whole.set(c, at);
      at += c.length;
    }
    if (whole.length !== bytes || sha256(whole) !== this.manifest.sha256) {
      throw new BrokerError(
        'E_ACCESS_PARTS',
        `the ${n} parts are ${whole.length} bytes whose SHA-256 differs from what the manifest declared (${bytes} bytes): a part is missing, truncated or not this answer's`,
        { path: 'manifest.sha256' },
      );
    }
    return whole;
  }
}
