// What a caller hands `PhiClient.publish`: a resource object, or JSON text or bytes. A resource goes out
// typed; anything else goes out in raw mode (docs/wire-format.md), byte for byte, so the broker can reject
// it with its own code and keep it in quarantine: nothing a caller sent vanishes. Text keeps every number's
// lexeme (`6.30` stays `6.30`); text that repeats a member name goes raw, and the broker names the path.
import { RAW_TYPE, RESOURCE_TYPE_NAME_PATTERN } from '../wire/ids.js';
import { parseJsonText } from '../wire/json.js';

const encoder = new TextEncoder();

/** Normalises what a caller hands `publish`: a resource object, JSON text or bytes. */
export function classifyInput(
  input: unknown,
): { type: string; resource: unknown } | { type: typeof RAW_TYPE; raw: Uint8Array } {
  let value = input;
  // Text and bytes that are not a resource go out byte for byte as the caller gave them (raw mode).
  let original: Uint8Array | undefined;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    original = typeof input === 'string' ? encoder.encode(input) : input;
    let parsed: ReturnType<typeof parseJsonText>;
    try {
      parsed = parseJsonText(new TextDecoder('utf-8', { fatal: true }).decode(original));
    } catch {
      return { type: RAW_TYPE, raw: original };
    }
    if ('fault' in parsed) return { type: RAW_TYPE, raw: original };
    value = parsed.value;
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const rt = (value as { resourceType?: unknown }).resourceType;
    if (typeof rt === 'string' && RESOURCE_TYPE_NAME_PATTERN.test(rt)) return { type: rt, resource: value };
  }
  return { type: RAW_TYPE, raw: original ?? encoder.encode(JSON.stringify(value) ?? 'undefined') };
}
