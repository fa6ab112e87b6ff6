// A refused OAuth request (RFC 6749 §5.2): the OAuth error the client sees, the HTTP status, and phi-broker's stable
// code with the field path it is about (docs/errors.md), for the error_description and the audit trail. Never a value
// the client sent beyond its client id: a description names fields, not their content.
import type { BrokerErrorCode } from '../wire/errors.js';

/** RFC 6749 §5.2 error codes the token endpoint answers with. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope';

export class OAuthError extends Error {
  override readonly name = 'OAuthError';

  constructor(
    readonly error: OAuthErrorCode,
    readonly code: BrokerErrorCode,
    /** The request field the refusal is about (`client_assertion.aud`, `scope`). */
    readonly path: string,
    message: string,
  ) {
    super(message);
  }

  /** 401 for a client that did not authenticate (RFC 6749 §5.2 allows it for invalid_client), else 400. */
  get status(): number {
    return this.error === 'invalid_client' ? 401 : 400;
  }

  /** The RFC 6749 §5.2 body. */
  body(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: `${this.code} at ${this.path}: ${this.message}` };
  }
}
