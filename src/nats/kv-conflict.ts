// The one check for a KV compare-and-set that lost (NATS ADR-8: Nats-Expected-Last-Subject-Sequence): JetStream API
// error 10071 "wrong last sequence", which nats.js `kv.create` and `kv.update` throw when the key moved on.

/** JetStream API error code "wrong last sequence". */
export const WRONG_LAST_SEQUENCE = 10071;

/** Whether `err` is JetStream's refusal of a compare-and-set: the key already has (another) entry. */
export function isWrongLastSequence(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === WRONG_LAST_SEQUENCE;
}
