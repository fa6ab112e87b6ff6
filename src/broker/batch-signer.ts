// The broker's batch signer (docs/wire-format.md, "Batch signatures"): deliveries and receipts sealed in one turn of
// the event loop are signed together, one Ed25519 signature over their Merkle tree head. No timer: the batch is
// signed at setImmediate, after the turn that produced it (a batch of one when nothing else is waiting), or at once
// when it reaches MAX_BATCH_LEAVES.
import type { SigningKeyPair } from '../crypto/keypairs.js';
import { MAX_BATCH_LEAVES, signBatch, type SignedKind } from '../envelope/batch-sig.js';

interface Pending {
  readonly kind: SignedKind;
  readonly bytes: Uint8Array;
  readonly resolve: (header: string) => void;
  readonly reject: (err: unknown) => void;
}

export class BatchSigner {
  #pending: Pending[] = [];
  #scheduled: NodeJS.Immediate | undefined;
  /** Signatures made and messages signed, for the metrics and tests. */
  readonly counts = { signatures: 0, messages: 0 };

  /** `signer` is read at each batch, so a rotation of the broker's key applies to the next batch. */
  constructor(
    private readonly signer: () => SigningKeyPair,
    private readonly maxLeaves = MAX_BATCH_LEAVES,
  ) {
    if (!Number.isInteger(maxLeaves) || maxLeaves < 1 || maxLeaves > MAX_BATCH_LEAVES)
      throw new TypeError(`BatchSigner: maxLeaves must be 1 to ${MAX_BATCH_LEAVES}`);
  }

  /** The Phi-Sig header value of `bytes`, once its batch is signed. */
  sign(kind: SignedKind, bytes: Uint8Array): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ kind, bytes, resolve, reject });
      if (this.#pending.length >= this.maxLeaves) this.flush();
      else this.#scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Signs what is pending now. */
  flush(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    let headers: string[];
    try {
      headers = signBatch(batch, this.signer());
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.counts.signatures += 1;
    this.counts.messages += batch.length;
    batch.forEach((p, i) => p.resolve(headers[i]!));
  }
}
