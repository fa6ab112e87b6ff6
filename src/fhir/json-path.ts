// Concrete element paths for error messages and results, in FHIRPath-like dotted form with indices
// (`Patient.name[0].given[1]`, http://hl7.org/fhir/R4/fhirpath.html). A JSON property name is input
// too: a name that does not look like a FHIR element name is shown as `[?]`, so a key made of PHI
// never comes back in an error.

const SHOWABLE_NAME = /^_?[A-Za-z][A-Za-z0-9]{0,63}$/;

/** Segments (property names, array indices) → `A.b[0].c`. The first segment is the root's name. */
export function formatPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += (out === '' ? '' : '.') + (SHOWABLE_NAME.test(s) ? s : '[?]');
  }
  return out;
}
