// The broker's side of an answer sent in parts (parts.ts): given the manifest that replied to its question, asks the
// service for part 1, 2 … n in order on phi.access.<service>.part.<token> (NATS request/reply), checking each on
// arrival, and returns the reassembled sealed answer with its signature — for openAnswerEnvelope to check like any
// answer. A part that does not come (no responder, timeout) is E_ACCESS_PARTS naming it and the NATS code: the
// attempt fails and the whole question is asked again later (a new attempt, new parts).
import type { NatsConnection } from 'nats';
import type { Keyring } from '../../crypto/keyring.js';
import { BrokerError } from '../../wire/errors.js';
import { requestOn, replyNonce } from '../../nats/request.js';
import { HEADERS, replies, subjects } from '../../wire/names.js';
import { PartsAssembly, partRequest, type PartsManifest } from '../protocol/parts.js';

export async function fetchParts(
  nc: NatsConnection,
  service: string,
  manifest: PartsManifest,
  keyring: Keyring,
  timeoutMs: number,
): Promise<{ bytes: Uint8Array; sig: string }> {
  const assembly = new PartsAssembly(manifest, keyring);
  const subject = subjects.accessPart(service, manifest.token);
  for (let k = assembly.next; k !== undefined; k = assembly.next) {
    let reply;
    try {
      reply = await requestOn(nc, subject, partRequest(k), replies.accessAnswer(service, replyNonce()), {
        timeout: timeoutMs,
      });
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? 'ERROR');
      throw new BrokerError('E_ACCESS_PARTS', `part ${k}/${manifest.parts}: not received (${code})`, {
        path: `part[${k}]`,
      });
    }
    assembly.add(
      k,
      reply.data,
      reply.headers?.get(HEADERS.part) || undefined,
      reply.headers?.get(HEADERS.signature) || undefined,
    );
  }
  return { bytes: assembly.assemble(), sig: manifest.sig };
}
