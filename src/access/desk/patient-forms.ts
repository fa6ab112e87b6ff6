// What a holding service's answer may name the patient by, and which of its resources are the broker's
// minimum-necessary copies (docs/patient-rights.md, "What an answer must contain"). A copy whose profile does not
// deliver ids or references as they are carries the subscriber's keyed pseudonym of them (src/projection/
// pseudonymizer.ts), so the patient asked is, in that service's copies, the pseudonym of its canonical reference.
import { subscriberPseudonymKey } from '../../crypto/broker-secrets.js';
import type { Catalog, PatientMatchDef } from '../../catalog/types.js';
import { pseudonymizer } from '../../projection/pseudonymizer.js';

/**
 * The canonical patient reference as the broker's copies to one service write it: `Patient/<token>` under
 * `match: reference`; `<system>|<token of value>` under `match: identifier` (the `pseudonym` transform on an
 * Identifier keeps the system and tokenises the value).
 */
export function pseudonymousPatientRef(
  patientRef: string,
  rule: PatientMatchDef,
  pseudonymKey: Uint8Array,
  service: string,
): string {
  const p = pseudonymizer(subscriberPseudonymKey(pseudonymKey, service));
  if (rule.match === 'reference') return p(patientRef);
  const prefix = `${rule.system}|`;
  return patientRef.startsWith(prefix) ? prefix + p(patientRef.slice(prefix.length)) : p(patientRef);
}

/** The profile URLs the catalog routes to `service`, by resource type (meta.profile of every copy it receives). */
export function deliveredProfiles(catalog: Catalog, service: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const topic of catalog.topics.values()) {
    for (const sub of topic.subscribers) {
      const url = sub.service === service ? catalog.profiles.get(sub.profile)?.url : undefined;
      if (url === undefined) continue;
      let urls = out.get(topic.resourceType);
      if (urls === undefined) out.set(topic.resourceType, (urls = new Set()));
      urls.add(url);
    }
  }
  return out;
}
