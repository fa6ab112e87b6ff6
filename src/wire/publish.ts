// The time bounds of an SDK publish (docs/publishing.md), shared by the SDK, which resends a message until
// JetStream acknowledges it or its deadline passes, and the stream setup, whose JetStream de-duplication window
// (Nats-Msg-Id, ADR-31) must cover the longest deadline so that every resend of one message is stored once.

/** How long `PhiClient.publish` may take by default: storing the message and waiting for the broker's receipt. */
export const PUBLISH_DEADLINE_DEFAULT_MS = 30_000;

/** The longest deadline a publish may be given; the streams' duplicate window is at least this long. */
export const PUBLISH_DEADLINE_MAX_MS = 120_000;

/** The shortest JetStream de-duplication window the streams may have: the longest publish deadline. */
export const DUPLICATE_WINDOW_MIN_MS = PUBLISH_DEADLINE_MAX_MS;

/** How many publishes a client holds before JetStream acknowledged them, by default (`maxPendingPublishes`). */
export const PENDING_PUBLISHES_DEFAULT = 10_000;

/** The most publishes a client may be configured to hold unacknowledged. */
export const PENDING_PUBLISHES_MAX = 1_000_000;
