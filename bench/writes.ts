// What one accepted message writes: per JetStream stream (KV buckets as their `KV_<bucket>` streams) the messages
// stored and their bytes over the measured window, from stream info (`$JS.API.STREAM.INFO`) at its two edges, and
// per process its write and read system calls (proc(5) /proc/<pid>/io `syscw`, `syscr`). Divided by the messages
// the broker accepted in the window (docs/performance-evidence.md, "Writes per Patient").
import type { NatsConnection, StreamInfo } from 'nats';

export interface StreamSample {
  /** The stream's last sequence: every message ever stored, removed ones included. */
  readonly lastSeq: number;
  readonly messages: number;
  readonly bytes: number;
}

export interface StreamWrites {
  /** Messages stored per message accepted. */
  readonly messages: number;
  /** Bytes stored per message accepted (file store: payload, subject, headers and record overhead). */
  readonly bytes: number;
  /**
   * True when nothing was removed in the window, so `bytes` is the growth of the stream; false for a work queue
   * (acked messages removed) or a KV key overwritten under history 1: then `bytes` is the messages stored times
   * the mean size of a message held at the window's end.
   */
  readonly bytesExact: boolean;
}

/** Every stream's sequence and size now. */
export async function sampleStreams(nc: NatsConnection): Promise<Record<string, StreamSample>> {
  const jsm = await nc.jetstreamManager();
  const out: Record<string, StreamSample> = {};
  const lister = jsm.streams.list();
  for await (const si of lister as AsyncIterable<StreamInfo>) {
    out[si.config.name] = { lastSeq: si.state.last_seq, messages: si.state.messages, bytes: si.state.bytes };
  }
  return out;
}

/** Per message accepted, what each stream stored between two samples (streams that stored nothing left out). */
export function streamWrites(
  a: Readonly<Record<string, StreamSample>>,
  b: Readonly<Record<string, StreamSample>>,
  accepted: number,
): Record<string, StreamWrites> {
  const out: Record<string, StreamWrites> = {};
  if (!(accepted > 0)) return out;
  for (const [name, end] of Object.entries(b)) {
    const start = a[name] ?? { lastSeq: 0, messages: 0, bytes: 0 };
    const stored = end.lastSeq - start.lastSeq;
    if (stored <= 0) continue;
    const exact = end.messages - start.messages === stored;
    const bytes = exact ? end.bytes - start.bytes : end.messages > 0 ? (stored * end.bytes) / end.messages : NaN;
    out[name] = { messages: stored / accepted, bytes: bytes / accepted, bytesExact: exact };
  }
  return out;
}
