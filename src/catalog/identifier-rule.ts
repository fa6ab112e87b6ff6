// The load-time rules for a profile's `identifiers:` block: which Identifier elements (FHIR R4 datatypes.html#Identifier)
// a subscriber may receive, chosen by their type (HL7 v2 table 0203, `Identifier.type.coding` with system
// http://terminology.hl7.org/CodeSystem/v2-0203) and/or their system URI. Pure; the projection
// (src/projection/identifiers.ts) applies the rule to every Identifier it delivers. Semantics: docs/profiles.md.
import type { CatalogIssue } from './issues.js';
import type { IdentifierMatcherDef, IdentifierRuleDef } from './types.js';
import type { YamlSource } from './yaml-source.js';

/** The code system of HL7 v2 table 0203, Identifier Type (FHIR R4 value set identifier-type draws on it). */
export const V2_0203_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/** The codes of HL7 v2 table 0203 (HL7 Terminology, CodeSystem v2-0203): an unknown code is a typo, not a new type. */
export const V2_0203_CODES: ReadonlySet<string> = new Set(
  (
    'AC ACSN AIN AM AMA AN ANC AND ANON ANT APRN ASID BA BC BCFN BCT BR BRN BSNR CAAI CC CONM CY CZ DC DCFN DDS DEA ' +
    'DFN DI DL DN DO DP DPM DR DS DSG EI EN ESN FDR FDRFN FGN FI FILL GI GIN GL GN HC IND IRISTEM JHN L&I LACSN LANR ' +
    'LI LN LR MA MB MC MCD MCN MCR MCT MD MI MR MRT MS NBSNR NCT NE NH NI NII NIIP NP NPI OBI OD PA PC PCN PE PEN PGN ' +
    'PHC PHE PHO PI PIN PLAC PN PNT PPIN PPN PRC PRN PT QA RI RN RPH RR RRI RRP SAMN SB SID SL SN SNBSN SNO SP SR ' +
    'SRX SS STN TAX TN TPR TRL U UDI UPIN USID VN VP VS WC WCN WP XV XX'
  ).split(' '),
);

/** `NNxxx` of table 0203: a national person identifier, xxx the ISO 3166 alpha-3 country code (`NNUSA`, `NNGBR`). */
const NATIONAL_PERSON = /^NN[A-Z]{3}$/;

/** True when `code` is a code of HL7 v2 table 0203. */
export function isV2IdentifierType(code: string): boolean {
  return V2_0203_CODES.has(code) || NATIONAL_PERSON.test(code);
}

/** An absolute URI (RFC 3986 §3: a scheme, a colon, then no white space): `urn:oid:…`, `http://…`. */
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/;

interface MatcherInput {
  readonly type?: string | undefined;
  readonly system?: string | undefined;
}

export interface IdentifierRuleInput {
  readonly keep: readonly MatcherInput[];
  readonly drop: readonly MatcherInput[];
}

function matcherDef(m: MatcherInput): IdentifierMatcherDef {
  return Object.freeze({
    ...(m.type === undefined ? {} : { type: m.type }),
    ...(m.system === undefined ? {} : { system: m.system }),
  });
}

const same = (a: MatcherInput, b: MatcherInput): boolean => a.type === b.type && a.system === b.system;

/** True when drop matcher `d` holds for every identifier keep matcher `k` holds for (so `k` can never keep). */
function dropCovers(d: MatcherInput, k: MatcherInput): boolean {
  return (d.type === undefined || d.type === k.type) && (d.system === undefined || d.system === k.system);
}

/** Checks the block (codes, URIs, matchers that can never keep) and builds its frozen form. */
export function checkIdentifierRule(
  input: IdentifierRuleInput,
  source: YamlSource,
): { def: IdentifierRuleDef; issues: CatalogIssue[] } {
  const issues: CatalogIssue[] = [];
  for (const list of ['keep', 'drop'] as const) {
    input[list].forEach((m, i) => {
      const at = ['identifiers', list, i];
      if (m.type !== undefined && !isV2IdentifierType(m.type)) {
        issues.push(
          source.issue(
            [...at, 'type'],
            `'${m.type}' is not a code of HL7 v2 table 0203 (${V2_0203_SYSTEM}): use one such as MR, SS, DL, MB, PT`,
          ),
        );
      }
      if (m.system !== undefined && !ABSOLUTE_URI.test(m.system)) {
        issues.push(
          source.issue(
            [...at, 'system'],
            `'${m.system}' is not an absolute URI (urn:oid:…, http://…): an Identifier.system is one`,
          ),
        );
      }
      const twin = input[list].findIndex((o) => same(o, m));
      if (twin < i) issues.push(source.issue(at, `the same matcher as identifiers.${list}[${twin}]: keep one`));
    });
  }
  input.keep.forEach((k, i) => {
    const d = input.drop.findIndex((o) => dropCovers(o, k));
    if (d >= 0) {
      issues.push(
        source.issue(['identifiers', 'keep', i], `identifiers.drop[${d}] drops every identifier this matcher keeps`),
      );
    }
  });
  const def: IdentifierRuleDef = Object.freeze({
    keep: Object.freeze(input.keep.map(matcherDef)),
    drop: Object.freeze(input.drop.map(matcherDef)),
  });
  return { def, issues };
}
