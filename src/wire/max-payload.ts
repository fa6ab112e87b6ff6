// The largest NATS message (nats-server's `max_payload`, reported to clients in INFO), spelled once.

/** nats-server's own default max_payload (1 MiB), assumed when a connection's INFO does not say. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/**
 * The max_payload phi-broker configures for its servers: twice the largest resource it accepts (room for the
 * per-field sealing overhead), never below nats-server's default.
 */
export function maxPayloadFor(maxMessageBytes: number): number {
  return Math.max(maxMessageBytes * 2, DEFAULT_MAX_PAYLOAD);
}

/** The max_payload of a connected server, from its INFO, or the default before INFO arrives. */
export function serverMaxPayload(info: { readonly max_payload?: number } | undefined): number {
  return info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
}
