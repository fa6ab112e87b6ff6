// One table from phi-broker's error codes to the HTTP status and FHIR R4 issue type (valueset-issue-type) the
// partner gateway answers with (FHIR R4 http.html: 400 bad syntax, 403 forbidden, 409 conflict, 413, 415, 422 rule
// or profile violation, 429). A code not listed is the gateway's own failure: 500 exception.
import type { OperationOutcome } from 'fhir/r4.js';
import type { BrokerErrorCode } from '../wire/errors.js';

export type IssueType = OperationOutcome['issue'][number]['code'];

export const HTTP_STATUS: Partial<Record<BrokerErrorCode, readonly [number, IssueType]>> = {
  E_JSON_MALFORMED: [400, 'structure'],
  E_NOT_FHIR: [400, 'structure'],
  E_UNKNOWN_RESOURCE_TYPE: [400, 'not-supported'],
  E_BUNDLE_INVALID: [400, 'invalid'],
  E_PARTNER_REQUEST: [400, 'invalid'],
  E_PARTNER_TOKEN: [401, 'login'],
  E_PARTNER_AUTH: [401, 'login'],
  E_NOT_AUTHORIZED: [403, 'forbidden'],
  E_PARTNER_SCOPE: [403, 'forbidden'],
  E_REPLAY: [409, 'duplicate'],
  E_PARTNER_IDEMPOTENCY: [422, 'conflict'],
  E_TOO_LARGE: [413, 'too-costly'],
  E_FHIR_INVALID: [422, 'invalid'],
  E_UNKNOWN_ELEMENT: [422, 'structure'],
  E_PATIENT_UNRESOLVED: [422, 'business-rule'],
  E_QUARANTINE_QUOTA: [422, 'business-rule'],
  E_QUARANTINE_FULL: [422, 'business-rule'],
  E_RATE_LIMITED: [429, 'throttled'],
  E_RATE_LIMIT_UNAVAILABLE: [503, 'transient'],
  E_NOT_STORED: [503, 'transient'],
  E_QUEUE_FULL: [503, 'transient'],
  E_TIMEOUT: [504, 'timeout'],
};

export function httpStatusOf(code: BrokerErrorCode): readonly [number, IssueType] {
  return HTTP_STATUS[code] ?? [500, 'exception'];
}

/** `201 Created`, as Bundle.entry.response.status writes it (FHIR R4 bundle.html). */
export function statusLine(status: number): string {
  return `${status} ${REASONS[status] ?? ''}`.trim();
}

const REASONS: Readonly<Record<number, string>> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
