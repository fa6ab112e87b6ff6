// The broker's batch signer (docs/wire-format.md, "Batch signatures"): deliveries and receipts sealed in one turn of
// the event loop are signed together, one Ed25519 signature over their Merkle tree head. No timer: the batch is
// signed at setImmediate, after the turn that produced it (a batch of one when nothing else is waiting), or at once
// when it reaches MAX_BATCH_LEAVES.
import type { SigningKeyPair } from '../crypto/keypairs.js';
import { MAX_BATCH_LEAVES, signBatch, type SignedKind } from '../envelope/batch-sig.js';

interface Pending {
  readonly kind: SignedKind;
  readonly bytes: Uint8Array;
  readonly signer: SigningKeyPair;
  readonly resolve: (header: string) => void;
  readonly reject: (err: unknown) => void;
}

export class BatchSigner {
  #pending: Pending[] = [];
  #scheduled: NodeJS.Immediate | undefined;
  /** Signatures made and messages signed, for the metrics and tests. */
  readonly counts = { signatures: 0, messages: 0 };

  constructor(private readonly maxLeaves = MAX_BATCH_LEAVES) {
    if (!Number.isInteger(maxLeaves) || maxLeaves < 1 || maxLeaves > MAX_BATCH_LEAVES)
      throw new TypeError(`BatchSigner: maxLeaves must be 1 to ${MAX_BATCH_LEAVES}`);
  }

  /**
   * The Phi-Sig header value of `bytes`, once its batch is signed by `signer` (for a delivery, the key its envelope
   * names: a rotation between sealing and signing never mixes kids; each kid gets its own tree).
   */
  sign(kind: SignedKind, bytes: Uint8Array, signer: SigningKeyPair): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ kind, bytes, signer, resolve, reject });
      if (this.#pending.length >= this.maxLeaves) this.flush();
      else this.#scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Signs what is pending now. */
  flush(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const pending = this.#pending;
    this.#pending = [];
    const byKid = new Map<string, Pending[]>();
    for (const p of pending) {
      const group = byKid.get(p.signer.kid);
      if (group === undefined) byKid.set(p.signer.kid, [p]);
      else group.push(p);
    }
    for (const batch of byKid.values()) {
      let headers: string[];
      try {
        headers = signBatch(batch, batch[0]!.signer);
      } catch (err) {
        for (const p of batch) p.reject(err);
        continue;
      }
      this.counts.signatures += 1;
      this.counts.messages += batch.length;
      batch.forEach((p, i) => p.resolve(headers[i]!));
    }
  }
}
