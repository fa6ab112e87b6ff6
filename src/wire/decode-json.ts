// Bytes to a checked value, one way everywhere: UTF-8 with fatal decoding (a bad byte sequence is refused, not
// replaced; WHATWG Encoding), JSON (RFC 8259; a byte order mark is refused, §8.1), then a zod schema. Every failure is a BrokerError whose message
// and path name the element, never the value (zod's own issue messages do not quote the input).
import type { z } from 'zod';
import { BrokerError, type BrokerErrorCode } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface JsonBytesOptions {
  /** What the bytes are, opening every message ('access request', 'the message'). */
  readonly what: string;
  /** The code for bytes that are not UTF-8 JSON (default E_JSON_MALFORMED). */
  readonly malformedCode?: BrokerErrorCode;
  /** The error path for bytes that are not UTF-8 JSON (default none). */
  readonly path?: string;
  /** A fixed message for every failure, where the kind must not show (a decryption, a receipt). */
  readonly message?: string;
}

export interface JsonSchemaOptions extends JsonBytesOptions {
  /** The code for JSON that does not fit the schema (E_STORED_INVALID for state read back, E_ENVELOPE_INVALID …). */
  readonly code: BrokerErrorCode;
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: BrokerError };

/** UTF-8 JSON bytes to their value, unchecked; anything else is `malformedCode`. */
export function decodeJsonBytes(bytes: Uint8Array, opts: JsonBytesOptions): unknown {
  try {
    return JSON.parse(utf8.decode(bytes)) as unknown;
  } catch {
    // No cause: the parser's message quotes the input.
    const message = opts.message ?? `${opts.what} is not well-formed UTF-8 JSON`;
    throw new BrokerError(
      opts.malformedCode ?? 'E_JSON_MALFORMED',
      message,
      opts.path === undefined ? undefined : { path: opts.path },
    );
  }
}

/** UTF-8 JSON bytes checked by `schema`, as a result (for readers that skip what is not theirs). */
export function tryDecodeJson<S extends z.ZodType>(
  bytes: Uint8Array,
  schema: S,
  opts: JsonSchemaOptions,
): Decoded<z.output<S>> {
  let json: unknown;
  try {
    json = decodeJsonBytes(bytes, opts);
  } catch (err) {
    return { ok: false, error: err as BrokerError };
  }
  const r = schema.safeParse(json);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  const path = issue === undefined ? '' : elementPath(issue.path);
  const where = path === '' ? opts.what : `${opts.what} ${path}`;
  const message = opts.message ?? `${where}: ${issue?.message ?? 'does not fit the schema'}`;
  return { ok: false, error: new BrokerError(opts.code, message, path === '' ? undefined : { path }) };
}

/** UTF-8 JSON bytes checked by `schema`; throws the coded error. */
export function decodeJson<S extends z.ZodType>(bytes: Uint8Array, schema: S, opts: JsonSchemaOptions): z.output<S> {
  const r = tryDecodeJson(bytes, schema, opts);
  if (!r.ok) throw r.error;
  return r.value;
}

/** A zod issue path in the FHIR dotted form with indices: `services.ehr.purposes[0]`. */
function elementPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}
