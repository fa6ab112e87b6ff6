// The publisher's check of a broker receipt's signature (docs/publishing.md, docs/wire-format.md): v1, one Ed25519
// signature over the receipt bytes under any broker signing key this client holds; v2, an inclusion path to a
// batch's signed tree head under the broker key the header names, the root's signature checked once per batch.
import type { Keyring } from '../crypto/keyring.js';
import { verifyDetached } from '../crypto/sign.js';
import { isBatchSig, parseBatchProof, verifyBatchProof, type VerifiedRoots } from '../envelope/batch-sig.js';
import { BrokerError } from '../wire/errors.js';

/** Throws E_SIGNATURE (or the key's status code: E_KEY_UNKNOWN, E_KEY_REVOKED) unless the broker signed `data`. */
export function verifyReceiptSignature(
  data: Uint8Array,
  sig: string | undefined,
  keyring: Keyring,
  brokerSigningKeys: ReadonlySet<string>,
  roots: VerifiedRoots,
): void {
  if (isBatchSig(sig)) {
    const proof = parseBatchProof(sig);
    if (!brokerSigningKeys.has(proof.kid))
      throw new BrokerError('E_KEY_UNKNOWN', 'receipt is signed with a broker key this client does not hold');
    verifyBatchProof('receipt', data, proof, keyring.signingPublicKey(proof.kid), roots);
    return;
  }
  const raw = Buffer.from(sig ?? '', 'base64url');
  for (const kid of brokerSigningKeys) {
    let key: Uint8Array;
    try {
      key = keyring.signingPublicKey(kid);
    } catch {
      continue; // retired or revoked since
    }
    if (verifyDetached(data, raw, key)) return;
  }
  throw new BrokerError('E_SIGNATURE', 'receipt signature does not verify');
}
