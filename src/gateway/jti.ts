// Replay protection for client assertions across every gateway instance (SMART Backend Services: "the jti value
// has not been previously encountered for the given iss within the maximum allowed authentication JWT lifetime"):
// the first use claims `<client id>.<SHA-256 of the jti>` in the KV bucket phi_gateway_jti by an atomic create
// (NATS ADR-8 compare-and-set on "no entry"); its TTL outlasts any assertion that can still pass the exp check.
import { createHash } from 'node:crypto';
import type { KV } from 'nats';
import { isWrongLastSequence } from '../nats/jetstream-errors.js';
import { OAuthError } from './oauth-error.js';

export class JtiStore {
  constructor(private readonly kv: KV) {}

  /** Claims the jti for `clientId`; throws invalid_client (E_PARTNER_AUTH) when any gateway claimed it before. */
  async claim(clientId: string, jti: string): Promise<void> {
    const key = `${clientId}.${createHash('sha256').update(jti, 'utf8').digest('base64url')}`;
    try {
      await this.kv.create(key, new Uint8Array(0));
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      throw new OAuthError('invalid_client', 'E_PARTNER_AUTH', 'client_assertion.jti', 'already used');
    }
  }
}
