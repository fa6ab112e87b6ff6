// A small checker of the IHE Basic Audit Log Patterns (BALP, https://profiles.ihe.net/ITI/BALP/) rules phi-broker's
// AuditEvents must meet: the general ones every event meets, and those of each BALP profile an event claims in
// meta.profile. Each rule is named after the BALP invariant or profile element it checks (the StructureDefinitions'
// FSH is in github.com/IHE/ITI.BasicAudit, input/fsh/). Returns the broken rules as text; [] when the event conforms.
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding, Reference } from 'fhir/r4.js';
import { isDeepStrictEqual } from 'node:util';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const SD = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';
const LIFECYCLE = 'http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const PARTICIPATION = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';

/** The profiles this checker knows; an event claiming any other fails `meta.profile`. */
export const BALP_PROFILES = {
  create: `${SD}IHE.BasicAudit.Create`,
  patientCreate: `${SD}IHE.BasicAudit.PatientCreate`,
  update: `${SD}IHE.BasicAudit.Update`,
  patientUpdate: `${SD}IHE.BasicAudit.PatientUpdate`,
  read: `${SD}IHE.BasicAudit.Read`,
  disclosureSource: `${SD}IHE.BasicAudit.PrivacyDisclosure.Source`,
} as const;

const has = (codings: readonly Coding[] | undefined, system: string, code: string): boolean =>
  (codings ?? []).some((c) => c.system === system && c.code === code);
const agentIs = (a: AuditEventAgent, system: string, code: string): boolean => has(a.type?.coding, system, code);
const entityIs = (e: AuditEventEntity, system: string, code: string): boolean =>
  e.type?.system === system && e.type.code === code;
const isPatientEntity = (e: AuditEventEntity): boolean => e.role?.system === OBJECT_ROLE && e.role.code === '1';
/** BALP users (agent[user]): the ParticipationType codes its profiles use for a person. */
const isUser = (a: AuditEventAgent): boolean =>
  ['AUT', 'INF', 'CST', 'IRCP'].some((code) => agentIs(a, PARTICIPATION, code));

/** `Reference(Patient)`: typed Patient, literal (`Patient/<id>`) or logical (identifier). */
function isPatientReference(r: Reference | undefined): boolean {
  if (r === undefined || r.type !== 'Patient') return false;
  if (r.reference !== undefined) return /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(r.reference);
  return r.identifier?.value !== undefined;
}

/** The problems of one event, each `<rule>: <what>`; [] when it conforms. */
export function balpProblems(e: AuditEvent): string[] {
  const problems: string[] = [];
  const fail = (rule: string, what: string): void => {
    problems.push(`${rule}: ${what}`);
  };

  // val-audit-source ("The Audit Source is this agent too"): the party that recorded the event is one of its agents.
  if (!e.agent.some((a) => a.who !== undefined && isDeepStrictEqual(a.who, e.source.observer)))
    fail('val-audit-source', 'no agent.who equals source.observer');
  // entity[patient].what only Reference(Patient), with type Person and role Patient.
  for (const x of (e.entity ?? []).filter(isPatientEntity)) {
    if (!isPatientReference(x.what)) fail('entity[patient].what', 'not a typed Reference(Patient)');
    if (!entityIs(x, ENTITY_TYPE, '1')) fail('entity[patient].type', 'not audit-entity-type#1 Person');
  }
  // agent[user].network 0..0 ("users are not network devices").
  for (const a of e.agent.filter(isUser))
    if (a.network !== undefined) fail('agent[user].network', 'a person carries no network address');
  // Disclosure events (DCM 110106 Export of PHI) carry ISO 21089 disclose (BALP PrivacyDisclosure subtype slice).
  if (
    has([e.type], DCM, '110106') &&
    (e.entity ?? []).some(isPatientEntity) &&
    !has(e.subtype, 'urn:phi-broker:operator-action', 'audit-export') &&
    !has(e.subtype, LIFECYCLE, 'disclose')
  )
    fail('subtype[disclosure]', 'an Export of PHI without iso-21089-lifecycle#disclose');

  const profiles = e.meta?.profile ?? [];
  const known = new Set<string>(Object.values(BALP_PROFILES));
  for (const p of profiles) if (!known.has(p)) fail('meta.profile', `${p} is not a BALP profile`);
  for (const p of profiles) problems.push(...profileProblems(e, p).map((m) => `${p.slice(SD.length)} ${m}`));
  return problems;
}

/** One agent of that role, with who and network: the client/server (RESTful) or source/recipient (disclosure) slices. */
function slice(e: AuditEvent, name: string, code: string, out: string[]): AuditEventAgent | undefined {
  const found = e.agent.filter((a) => agentIs(a, DCM, code));
  if (found.length !== 1) {
    out.push(`agent[${name}]: expected exactly one DCM#${code}, found ${found.length}`);
    return undefined;
  }
  const a = found[0] as AuditEventAgent;
  if (a.who === undefined) out.push(`agent[${name}].who: missing`);
  if (a.network?.address === undefined) out.push(`agent[${name}].network: missing`);
  return a;
}

function profileProblems(e: AuditEvent, profile: string): string[] {
  const out: string[] = [];
  const rest = (interaction: readonly string[], action: string, client: string, server: string): void => {
    if (!has([e.type], 'http://terminology.hl7.org/CodeSystem/audit-event-type', 'rest')) out.push('type: not rest');
    if (!interaction.some((i) => has(e.subtype, RESTFUL, i))) out.push(`subtype: no ${interaction.join('/')}`);
    if (e.action !== action) out.push(`action: ${e.action ?? '-'}, expected ${action}`);
    // "failures are recorded differently": these profiles fix the outcome to success.
    if (e.outcome !== '0') out.push(`outcome: ${e.outcome ?? '-'}, fixed to 0 (success)`);
    slice(e, 'client', client, out);
    slice(e, 'server', server, out);
    const data = (e.entity ?? []).filter((x) => entityIs(x, ENTITY_TYPE, '2'));
    if (data.length !== 1) out.push(`entity[data]: expected exactly one System Object, found ${data.length}`);
    for (const x of data) {
      if (x.what === undefined) out.push('entity[data].what: missing');
      if (!['3', '4', '20'].includes(x.role?.code ?? '') || x.role?.system !== OBJECT_ROLE)
        out.push('entity[data].role: not from RestObjectRoles');
    }
  };
  const onePatient = (): void => {
    const patients = (e.entity ?? []).filter(isPatientEntity);
    if (patients.length !== 1) out.push(`entity[patient]: expected exactly one, found ${patients.length}`);
  };
  switch (profile) {
    case BALP_PROFILES.create:
    case BALP_PROFILES.patientCreate:
      rest(['create'], 'C', '110153', '110152');
      if (profile === BALP_PROFILES.patientCreate) onePatient();
      break;
    case BALP_PROFILES.update:
    case BALP_PROFILES.patientUpdate:
      rest(['update', 'patch'], 'U', '110153', '110152');
      if (profile === BALP_PROFILES.patientUpdate) onePatient();
      break;
    case BALP_PROFILES.read:
      rest(['read', 'vread'], 'R', '110152', '110153');
      break;
    case BALP_PROFILES.disclosureSource: {
      if (!has([e.type], DCM, '110106')) out.push('type: not DCM#110106 Export');
      if (e.action !== 'R') out.push(`action: ${e.action ?? '-'}, expected R`);
      if (!has(e.subtype, LIFECYCLE, 'disclose')) out.push('subtype[disclosure]: no iso-21089-lifecycle#disclose');
      const source = slice(e, 'source', '110153', out);
      slice(e, 'recipient', '110152', out);
      // agent[source] obeys val-audit-source: the disclosing party recorded it.
      if (source !== undefined && !isDeepStrictEqual(source.who, e.source.observer))
        out.push('agent[source]: does not obey val-audit-source');
      if ((e.entity ?? []).length < 2) out.push('entity: expected at least 2 (patient and data)');
      onePatient();
      break;
    }
  }
  return out;
}
