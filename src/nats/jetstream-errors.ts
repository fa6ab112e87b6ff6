// JetStream API errors phi-broker acts on, recognised in one place. The server answers a refused request
// with `{error: {code, err_code, description}}`; nats.js (and src/nats/acked-publish.ts) put that object in a
// NatsError's `api_error` (NATS ADR-1, server/errors.json).

/** `JSWrongLastSequenceErrF`: a compare-and-set (Nats-Expected-Last-Subject-Sequence, ADR-8) found another revision. */
export const JS_WRONG_LAST_SEQUENCE = 10071;

/** The JetStream error code of `err`, when it is a JetStream API error. */
export function jetStreamErrorCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { api_error?: { err_code?: unknown } }).api_error?.err_code;
  return typeof code === 'number' ? code : undefined;
}

/** True when a KV write or expected-sequence publish was refused because the key moved on since it was read. */
export function isWrongLastSequence(err: unknown): boolean {
  return jetStreamErrorCode(err) === JS_WRONG_LAST_SEQUENCE;
}

/** `JSStreamStoreFailedF`: the stream refused to store a message (with discard new: its max_bytes is reached). */
export const JS_STREAM_STORE_FAILED = 10077;

/** True when a publish was refused because the stream is full (max_bytes or max_msgs with discard new). */
export function isStreamFull(err: unknown): boolean {
  if (jetStreamErrorCode(err) !== JS_STREAM_STORE_FAILED) return false;
  const description = (err as { api_error?: { description?: unknown } }).api_error?.description;
  return /maximum (bytes|messages) exceeded/i.test(String(description ?? ''));
}
