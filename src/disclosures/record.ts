// One disclosure record (45 CFR 164.528(b)(2)): the date, the recipient, a description of what was disclosed
// (resource type and the element paths the applied profile let through) and the purpose, plus the ids that tie it
// to the delivery and the original message. Names and codes only — never a value — so the record is stored as
// plain JSON in PHI_DISCLOSURES, on subject `phi.disclosure.<patient pseudonym>.<recipient>`: the patient appears
// only as the broker's keyed pseudonym. A delivery about several patients (a Bundle that travels whole) is
// recorded once for each of them. A delivery whose patient cannot be resolved is still recorded, under
// `_unresolved`, so nothing disclosed is left out of the trail.
import { z } from 'zod';
import type { PurposeOfUse } from '../catalog/types.js';
import { PURPOSES_OF_USE } from '../catalog/types.js';
import { UNRESOLVED_PATIENT, subjects } from '../wire/names.js';
import { tryDecodeJson } from '../wire/decode-json.js';

export const DISCLOSURE_RECORD_VERSION = 1;

const recordSchema = z.strictObject({
  v: z.literal(DISCLOSURE_RECORD_VERSION),
  /** The delivery id `<message id>.<recipient>` (its Nats-Msg-Id in PHI_DELIVER). */
  id: z.string().min(1).max(200),
  /** When the broker made the delivery, ms since epoch. */
  at: z.number().int().nonnegative(),
  recipient: z.string().min(1),
  type: z.string().min(1),
  purpose: z.enum(PURPOSES_OF_USE),
  /** Canonical URL of the profile that shaped the copy. */
  profile: z.string().min(1),
  elements: z.array(z.string()),
  /** The publishing service and its message id (provenance). */
  source: z.string().min(1),
  messageId: z.string().min(1),
});

export type DisclosureRecord = z.output<typeof recordSchema>;

export interface DisclosureMessage {
  readonly subject: string;
  /** JetStream de-duplication id (ADR-31): a redelivered ingest message records the disclosure once. */
  readonly msgId: string;
  readonly bytes: Uint8Array;
  readonly unresolved: boolean;
}

export interface DisclosedDelivery {
  readonly service: string;
  readonly msgId: string;
  readonly profileUrl: string;
  readonly purpose: string;
  /** `patients`: the pseudonyms of the patients the delivery is about (undefined: one that did not resolve); at least one. */
  readonly disclosure?: { readonly patients: readonly (string | undefined)[]; readonly elements: readonly string[] };
}

const utf8 = new TextEncoder();

/** The records for the accounted deliveries of one message (deliveries without `disclosure` are not disclosures). */
export function disclosureMessages(
  message: { readonly id: string; readonly sender: string; readonly type: string },
  deliveries: readonly DisclosedDelivery[],
  at: number,
): DisclosureMessage[] {
  const out: DisclosureMessage[] = [];
  for (const d of deliveries) {
    if (d.disclosure === undefined) continue;
    const record: DisclosureRecord = {
      v: DISCLOSURE_RECORD_VERSION,
      id: d.msgId,
      at,
      recipient: d.service,
      type: message.type,
      purpose: d.purpose as PurposeOfUse,
      profile: d.profileUrl,
      elements: [...d.disclosure.elements],
      source: message.sender,
      messageId: message.id,
    };
    const patients = d.disclosure.patients.length === 0 ? [undefined] : d.disclosure.patients;
    const bytes = utf8.encode(JSON.stringify(record));
    for (const patient of patients) {
      out.push({
        subject: subjects.disclosure(patient ?? UNRESOLVED_PATIENT, d.service),
        // One record per patient of the delivery, each with its own stable de-duplication id.
        msgId:
          patients.length === 1 ? `disclosure.${d.msgId}` : `disclosure.${d.msgId}.${patient ?? UNRESOLVED_PATIENT}`,
        bytes,
        unresolved: patient === undefined,
      });
    }
  }
  return out;
}

/** Parses a stored record; undefined for anything that is not one (another writer on phi.disclosure.*). */
export function decodeDisclosure(bytes: Uint8Array): DisclosureRecord | undefined {
  const r = tryDecodeJson(bytes, recordSchema, { what: 'disclosure record', code: 'E_STORED_INVALID' });
  return r.ok ? r.value : undefined;
}
