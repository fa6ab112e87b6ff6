// `GET /StructureDefinition/[id]`: the StructureDefinition of each profile a partner receives (FHIR R4 read
// interaction). Conformance resources carry no PHI, so like `/metadata` they need no token.
import type { FastifyInstance } from 'fastify';
import type { StructureDefinition } from 'fhir/r4.js';
import type { Catalog } from '../../catalog/types.js';
import { operationOutcome } from '../operation-outcome.js';
import { partnerProfiles, profileStructureDefinition } from './structure-definition.js';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** The partner profiles' StructureDefinitions by id, built once from the catalog. */
export function partnerStructureDefinitions(catalog: Catalog): ReadonlyMap<string, StructureDefinition> {
  return new Map(partnerProfiles(catalog).map((p) => [p.id, profileStructureDefinition(p)]));
}

export function registerProfileRoutes(app: FastifyInstance, catalog: Catalog): void {
  const definitions = partnerStructureDefinitions(catalog);
  app.get<{ Params: { id: string } }>('/StructureDefinition/:id', (req, reply) => {
    const sd = definitions.get(req.params.id);
    reply.header('content-type', FHIR_JSON);
    if (sd === undefined)
      return reply
        .code(404)
        .send(operationOutcome('not-found', undefined, 'no partner profile has this id', 'StructureDefinition.id'));
    return reply.send(sd);
  });
}
