// Selecting and presenting stored AuditEvents for an auditor: filters (patient pseudonym, service, time
// window, outcome), a one-line text form, and a FHIR R4 Bundle (http://hl7.org/fhir/R4/bundle.html) for
// export. Pure over AuditEvent values; reading the stream is read.ts, the command is src/cli/audit.ts.
import type { AuditEvent, Bundle, Identifier } from 'fhir/r4.js';
import { SYSTEM } from './codes.js';

export interface AuditFilter {
  /** The broker's pseudonym of the patient (the CLI derives it from `--patient Patient/<id>`). */
  readonly patientPseudonym?: string;
  /** A service id that took part in the event as any agent. */
  readonly service?: string;
  /** Inclusive lower bound of `recorded`, ms since epoch. */
  readonly sinceMs?: number;
  /** Exclusive upper bound of `recorded`, ms since epoch. */
  readonly untilMs?: number;
  /** AuditEvent.outcome codes to keep ('0' success, '4' minor, '8' serious, '12' major failure). */
  readonly outcomes?: readonly string[];
}

export const OUTCOME_NAMES: Readonly<Record<string, readonly string[]>> = {
  success: ['0'],
  failure: ['4', '8', '12'],
  '0': ['0'],
  '4': ['4'],
  '8': ['8'],
  '12': ['12'],
};

export function matchesFilter(e: AuditEvent, f: AuditFilter): boolean {
  if (
    f.patientPseudonym !== undefined &&
    !(e.entity ?? []).some(
      (x) => x.what?.identifier?.system === SYSTEM.patientPseudonym && x.what.identifier.value === f.patientPseudonym,
    )
  )
    return false;
  if (f.service !== undefined && !e.agent.some((a) => tookPart(a.who?.identifier, f.service as string))) return false;
  if (f.sinceMs !== undefined || f.untilMs !== undefined) {
    const at = Date.parse(e.recorded);
    if (f.sinceMs !== undefined && at < f.sinceMs) return false;
    if (f.untilMs !== undefined && at >= f.untilMs) return false;
  }
  if (f.outcomes !== undefined && !f.outcomes.includes(e.outcome ?? '')) return false;
  return true;
}

/** `<recorded>  <event>  <outcome>  <agents>  <entities>`: ids, codes and pseudonyms only. */
export function formatEventLine(e: AuditEvent): string {
  const kind = [e.type.display ?? e.type.code, e.subtype?.[0]?.display ?? e.subtype?.[0]?.code]
    .filter(Boolean)
    .join('/');
  const outcome =
    e.outcome === '0'
      ? 'success'
      : `failure(${e.outcome ?? '?'})${e.outcomeDesc === undefined ? '' : ` ${e.outcomeDesc}`}`;
  const agents = e.agent.map((a) => `${a.requestor ? '*' : ''}${a.who?.identifier?.value ?? '?'}`).join(',');
  const entities = (e.entity ?? [])
    .map((x) => {
      const id = x.what?.identifier;
      if (id?.system === SYSTEM.patientPseudonym) return `patient:${id.value ?? ''}`;
      if (id?.system === SYSTEM.messageId) return `${x.name ?? 'message'}:${id.value ?? ''}`;
      if (id !== undefined) return `${id.system?.replace(/^urn:phi-broker:/, '') ?? 'id'}:${id.value ?? ''}`;
      if (x.what?.reference !== undefined) return x.what.reference;
      if (x.what?.type !== undefined) return x.what.type;
      return undefined;
    })
    .filter((s): s is string => s !== undefined);
  const purpose = e.purposeOfEvent?.[0]?.coding?.[0]?.code;
  return [
    e.recorded,
    kind,
    outcome,
    agents,
    entities.join(' '),
    ...(purpose === undefined ? [] : [`purpose:${purpose}`]),
  ].join('  ');
}

/** A FHIR R4 Bundle of type collection holding the events, for an auditor. */
export function auditBundle(events: readonly AuditEvent[], id: string, nowMs: number): Bundle<AuditEvent> {
  return {
    resourceType: 'Bundle',
    id,
    type: 'collection',
    timestamp: new Date(nowMs).toISOString(),
    entry: events.map((e) => ({ fullUrl: `urn:uuid:${e.id ?? ''}`, resource: e })),
  };
}

/** `2026-01-02`, `2026-01-02T03:04:05Z`, or a duration before `nowMs`: `90m`, `24h`, `7d`. */
export function parseTime(text: string, nowMs: number): number | undefined {
  const rel = /^(\d{1,6})(m|h|d)$/.exec(text);
  if (rel !== null)
    return nowMs - Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'm' | 'h' | 'd'];
  if (!/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/** A service by its catalog id; `broker`: the phi-broker process that recorded the event (agent = source.observer). */
function tookPart(id: Identifier | undefined, service: string): boolean {
  if (id === undefined) return false;
  if (id.system === SYSTEM.service) return id.value === service;
  return service === 'broker' && id.system === SYSTEM.instance;
}
