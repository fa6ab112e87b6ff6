// Errors of the FHIR endpoints as an R4 OperationOutcome (operationoutcome.html): issue.code from the R4 issue-type
// value set, details carrying phi-broker's stable code (urn:phi-broker:error-code) and expression the element path.
// Never a value the caller sent.
import type { OperationOutcome } from 'fhir/r4.js';
import type { BrokerErrorCode } from '../wire/errors.js';

export const ERROR_CODE_SYSTEM = 'urn:phi-broker:error-code';

export function operationOutcome(
  issueCode: OperationOutcome['issue'][number]['code'],
  code: BrokerErrorCode | undefined,
  diagnostics: string,
  path?: string,
): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [
      {
        severity: 'error',
        code: issueCode,
        ...(code === undefined ? {} : { details: { coding: [{ system: ERROR_CODE_SYSTEM, code }], text: code } }),
        diagnostics,
        ...(path === undefined ? {} : { expression: [path] }),
      },
    ],
  };
}
