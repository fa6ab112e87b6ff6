// The phi-broker envelope, version 1 (docs/wire-format.md): the JSON object that travels, UTF-8 encoded and signed
// over its exact bytes. Field order in the bytes is fixed by seal.ts; readers must not depend on it.

export const ENVELOPE_VERSION = 1;
export const DATA_KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_RECIPIENTS = 256;

/** One wrapped copy of the message's data key. */
export interface WrappedKey {
  /** Recipient service id. */
  readonly to: string;
  /** KEK id `kidA~kidB` (src/crypto/kek.ts). */
  readonly kek: string;
  /** base64url(nonce || XChaCha20-Poly1305(data key)). */
  readonly wk: string;
}

/** Where a broker delivery came from (DESIGN.md property 4). */
export interface Provenance {
  /** Original publisher's service id. */
  readonly src: string;
  /** Original message id. */
  readonly mid: string;
  /** SHA-256 of the original envelope bytes, base64url (43 characters). */
  readonly hash: string;
  /** Canonical URL of the projection profile that shaped this delivery. */
  readonly profile?: string;
  /** HL7 v3 PurposeOfUse code of the subscription. */
  readonly purpose?: string;
  /** The original envelope's `iat`: when its publisher sealed it (ms since the epoch). */
  readonly at: number;
}

/** A resource with its PHI leaves sealed (structured mode) or one sealed string (raw mode). */
export type SealedBody = Readonly<Record<string, unknown>> | string;

export interface Envelope {
  readonly v: 1;
  readonly id: string;
  readonly iss: string;
  readonly iat: number;
  readonly typ: string;
  readonly kid: string;
  readonly dk: string;
  readonly keys: readonly WrappedKey[];
  readonly prov?: Provenance;
  readonly body: SealedBody;
}

/** What raw mode carries: the input bytes as given. */
export interface RawPayload {
  readonly raw: Uint8Array;
}

export function isRawPayload(value: unknown): value is RawPayload {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { raw?: unknown }).raw instanceof Uint8Array &&
    !('resourceType' in value)
  );
}
