// acceptedFacts over the real pipeline (checkEnvelope + routeMessage on sealed messages of the shipped catalog): the
// facts of an accepted message carry the broker's keyed pseudonyms — the patient's being the very registry key the
// pipeline computed once for the message — and never a patient reference or a logical id in clear; the AuditEvents
// written from them (templates or builder, byte for byte the same) name the patient and the resource by those.
import { beforeAll, describe, expect, it } from 'vitest';
import { acceptedFacts, profileElements, rejectedFacts } from '../../src/broker/audit-facts.js';
import { BrokerError } from '../../src/wire/errors.js';
import { AuditEventJson } from '../../src/audit/event-json.js';
import { buildAuditEvent, type EventContext } from '../../src/audit/event.js';
import type { AuditFact } from '../../src/audit/facts.js';
import { checkEnvelope, routeMessage, type IngestMessage, type Routed } from '../../src/broker/pipeline.js';
import { DEFAULT_PATIENT_MATCH } from '../../src/catalog/types.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { PSEUDONYM_MASTER, context, heldRoutes, patient, publication, world } from './fixtures.js';

const secrets = { pseudonymKey: PSEUDONYM_MASTER };

beforeAll(async () => {
  await initCrypto();
  world();
});

/** The broker's pseudonym, counting its inputs: how many HMACs a message cost and over what. */
function counted(): { readonly inputs: string[]; readonly pseudonymOf: (ref: string) => string } {
  const inputs: string[] = [];
  return { inputs, pseudonymOf: (ref) => (inputs.push(ref), patientPseudonym(secrets, ref)) };
}

/** As broker.ts does: one pseudonym function for the pipeline's patients (the registry's) and the audit subject. */
function accepted(msg: IngestMessage, pseudonymOf: (ref: string) => string): { routed: Routed; facts: AuditFact[] } {
  const ctx = context({ routes: heldRoutes(), patients: { rule: DEFAULT_PATIENT_MATCH, pseudonymOf } });
  const checked = checkEnvelope(msg, ctx);
  const routed = routeMessage(checked, ctx);
  return {
    routed,
    facts: acceptedFacts(checked, 7, routed, profileElements(world().catalog), 'broker:sig:1', pseudonymOf),
  };
}

/** The events the trail writes for the facts, checked byte for byte against the builder. */
function written(facts: readonly AuditFact[]): string[] {
  let n = 0;
  let m = 0;
  const fast: EventContext = { instanceId: 'i-1', host: 'h', now: () => 1_700_000_000_000, newId: () => `ev-${++n}` };
  const reference: EventContext = { ...fast, newId: () => `ev-${++m}` };
  const writer = new AuditEventJson(fast);
  return facts.map((f) => {
    const text = writer.json(f);
    expect(text).toBe(JSON.stringify(buildAuditEvent(f, reference)));
    return text;
  });
}

describe('acceptedFacts: the audit subject as pseudonyms computed once', () => {
  it('an Observation: the patient as the pipeline computed it (no second HMAC), the resource as Observation/<id>; no reference or id in a fact', () => {
    const c = counted();
    const obs = {
      resourceType: 'Observation',
      id: 'obs-Zq8801',
      status: 'final',
      code: { text: 'pulse' },
      subject: { reference: 'Patient/pat-Zq7701' },
    };
    const { routed, facts } = accepted(publication({ from: 'ehr', id: 'msg-obs-1', resource: obs }), c.pseudonymOf);
    // one HMAC per message for the patient (the registry's key, read by the audit facts too), one for the resource id
    expect(c.inputs).toEqual(['Patient/pat-Zq7701', 'Observation/obs-Zq8801']);
    const patientToken = patientPseudonym(secrets, 'Patient/pat-Zq7701');
    expect(routed.patients.parts[0]?.patient).toMatchObject({ kind: 'patient', pseudonym: patientToken });
    const subject = {
      messageId: 'msg-obs-1',
      resourceType: 'Observation',
      resourcePseudonym: patientPseudonym(secrets, 'Observation/obs-Zq8801'),
      patientPseudonym: patientToken,
    };
    expect(facts.length).toBe(1 + routed.deliveries.length + routed.withheld.length + routed.restricted.length);
    for (const f of facts) expect('subject' in f ? f.subject : undefined).toEqual(subject);
    // the facts hold no raw reference and no logical id, at any depth
    const text = JSON.stringify(facts);
    expect(text).not.toContain('Zq7701');
    expect(text).not.toContain('Zq8801');
    expect(text).not.toContain('Patient/');
    const events = written(facts);
    for (const e of events) {
      expect(e).toContain(`"system":"urn:phi-broker:patient-pseudonym","value":"${patientToken}"`);
      expect(e).toContain(`"system":"urn:phi-broker:resource-pseudonym","value":"${subject.resourcePseudonym}"`);
      expect(e).not.toContain('Zq');
    }
  });

  it('a Patient: its id is the patient id, so no resource pseudonym; one HMAC for the whole message', () => {
    const c = counted();
    const p = patient();
    const { facts } = accepted(publication({ id: 'msg-pat-1', resource: p }), c.pseudonymOf);
    expect(c.inputs).toEqual([`Patient/${String(p['id'])}`]);
    expect(facts[0]).toMatchObject({
      kind: 'accepted',
      subject: {
        messageId: 'msg-pat-1',
        resourceType: 'Patient',
        patientPseudonym: patientPseudonym(secrets, `Patient/${String(p['id'])}`),
      },
    });
    expect(facts[0] !== undefined && 'subject' in facts[0] ? Object.keys(facts[0].subject) : []).toEqual([
      'messageId',
      'resourceType',
      'patientPseudonym',
    ]);
    expect(JSON.stringify(facts)).not.toContain(String(p['id']));
    const [event] = written(facts);
    expect(event).toContain('"what":{"type":"Patient"}');
  });

  it('a Bundle that travels whole: each entry patient once, as a pseudonym; no entry reference in a fact', () => {
    const c = counted();
    const entry = (id: string, ref: string) => ({
      resource: {
        resourceType: 'Observation',
        id,
        status: 'final',
        code: { text: 'pulse' },
        subject: { reference: ref },
      },
    });
    const bundle = {
      resourceType: 'Bundle',
      id: 'b-Zq9901',
      type: 'collection',
      entry: [entry('o-1', 'Patient/p-Zq11'), entry('o-2', 'Patient/p-Zq22'), entry('o-3', 'Patient/p-Zq11')],
    };
    const { facts } = accepted(publication({ id: 'msg-bundle-1', resource: bundle }), c.pseudonymOf);
    expect(c.inputs).toEqual(['Patient/p-Zq11', 'Patient/p-Zq22', 'Bundle/b-Zq9901']);
    expect(facts[0]).toMatchObject({
      subject: {
        patientPseudonyms: [patientPseudonym(secrets, 'Patient/p-Zq11'), patientPseudonym(secrets, 'Patient/p-Zq22')],
      },
    });
    expect(JSON.stringify(facts)).not.toContain('Zq');
    for (const e of written(facts)) expect(e).not.toContain('Zq');
  });
});

describe('rejectedFacts', () => {
  const error = new BrokerError('E_QUARANTINE_FULL', 'Patient.birthDate: the quarantine is full', {
    path: 'Patient.birthDate',
  });
  const base = { sender: 'registration', type: 'Patient', messageId: 'm-1', ingestSeq: 9 };

  it('rejected, then quarantined with the record id', () => {
    expect(rejectedFacts(error, { ...base, quarantineId: 'q-9' }).map((f) => f.kind)).toEqual([
      'rejected',
      'quarantined',
    ]);
  });

  it('rejected alone when no record was kept (a full quarantine)', () => {
    expect(rejectedFacts(error, { ...base, quarantineId: undefined })).toEqual([
      {
        kind: 'rejected',
        sender: { service: 'registration' },
        messageId: 'm-1',
        resourceType: 'Patient',
        code: 'E_QUARANTINE_FULL',
        path: 'Patient.birthDate',
        ingestSeq: 9,
      },
    ]);
  });
});
