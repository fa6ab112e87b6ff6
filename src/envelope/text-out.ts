// The byte buffer the sealer writes an envelope's JSON text into, piece by piece, so that sealing builds no
// intermediate strings (one per leaf, key and nesting level) and no flattened copy of the whole text to encode as
// UTF-8: the bytes are written once and copied out once. One scratch buffer serves every (synchronous) seal; it
// holds sealed leaves and the plaintext allow-list (docs/wire-format.md), never a plaintext leaf.

/** A buffer grown past this for one large envelope is not kept for the next. */
const KEPT_BYTES = 256 * 1024;

export class TextOut {
  #buf: Buffer;
  #len = 0;

  constructor(private readonly size = 16 * 1024) {
    this.#buf = Buffer.allocUnsafe(size);
  }

  /** Starts a new text. */
  reset(): void {
    this.#len = 0;
    if (this.#buf.length > KEPT_BYTES) this.#buf = Buffer.allocUnsafe(this.size);
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(grown, 0, 0, this.#len);
    this.#buf = grown;
  }

  /** Appends one ASCII character by its code. */
  byte(c: number): void {
    this.#room(1);
    this.#buf[this.#len++] = c;
  }

  /** Appends text as UTF-8 (at most 3 bytes per UTF-16 unit). */
  text(s: string): void {
    this.#room(s.length * 3);
    this.#len += this.#buf.write(s, this.#len, 'utf8');
  }

  /** Appends `s` in double quotes: a JSON string whose text needs no escape (base64url, a simple key). */
  quoted(s: string): void {
    this.#room(s.length * 3 + 2);
    this.#buf[this.#len++] = 0x22;
    this.#len += this.#buf.write(s, this.#len, 'utf8');
    this.#buf[this.#len++] = 0x22;
  }

  /** A copy of the text's bytes (the scratch buffer is reused by the next seal). */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.#len);
    out.set(this.#buf.subarray(0, this.#len));
    return out;
  }
}
