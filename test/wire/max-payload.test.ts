// The one max_payload default (src/wire/max-payload.ts): nats-server's own 1 MiB, and what phi-broker configures.
import { expect, it } from 'vitest';
import { DEFAULT_MAX_PAYLOAD, maxPayloadFor, serverMaxPayload } from '../../src/wire/max-payload.js';

it("is nats-server's default, 1 MiB", () => {
  expect(DEFAULT_MAX_PAYLOAD).toBe(1_048_576);
});

it('configures twice the message limit, never below the default', () => {
  expect(maxPayloadFor(1000)).toBe(1_048_576);
  expect(maxPayloadFor(524_288)).toBe(1_048_576);
  expect(maxPayloadFor(4_000_000)).toBe(8_000_000);
});

it("reads a connected server's limit from its INFO, the default before INFO arrives", () => {
  expect(serverMaxPayload({ max_payload: 65_536 })).toBe(65_536);
  expect(serverMaxPayload({})).toBe(DEFAULT_MAX_PAYLOAD);
  expect(serverMaxPayload(undefined)).toBe(DEFAULT_MAX_PAYLOAD);
});
