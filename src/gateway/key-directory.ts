// What the partner gateway takes from the key directory (docs/keys.md, docs/partner-gateway.md "JWKS"): the public
// keys it publishes at /.well-known/jwks.json beside its token key — the broker's Ed25519 `sig` and X25519 `enc`
// keys and the gateways' own Ed25519 audit key, as RFC 8037 OKP JWKs; the gateways' ES384 token keys, whose
// revocation or retirement stops them signing and verifying; and each partner's client-assertion keys.
// Only keys usable now are listed: active, or retiring before their notAfter; retired and revoked keys are left out.
import type { JWK } from 'jose';
import type { KV } from 'nats';
import {
  effectiveStatus,
  type ClientJwk,
  type DirectoryEntry,
  type DirectoryKey,
  type OperatorRootKey,
} from '../crypto/key-directory.js';
import { publicJwk } from '../crypto/jwk.js';
import type { OkpJwk } from '../crypto/jwk.js';
import type { PublicKeyRecord } from '../crypto/keypairs.js';
import type { Logger } from '../log/log.js';
import { KeyDirectoryWatch, openKeyDirectoryBucket } from '../nats/key-directory.js';
import type { NatsConnection } from 'nats';
import { BROKER_ID, GATEWAY_AUDIT_ID } from '../wire/ids.js';
import type { TokenKeyStatus } from './token-signer.js';

export interface ClientKeySet {
  readonly usable: readonly ClientJwk[];
  readonly listed: ReadonlySet<string>;
}

/** The parties whose public keys the gateway's JWKS lists, and which of their keys. */
const PUBLISHED: ReadonlyMap<string, readonly OkpJwk['use'][]> = new Map([
  [BROKER_ID, ['sig', 'enc']],
  [GATEWAY_AUDIT_ID, ['sig']],
]);

const usable = (k: DirectoryKey<OkpJwk | ClientJwk>, nowMs: number): boolean => {
  const status = effectiveStatus(k, nowMs);
  return status === 'active' || status === 'retiring';
};

/** The directory's view for the gateway: fed by a watch, or fixed from jwks.json when there is no directory. */
export class GatewayKeyView {
  readonly #entries = new Map<string, DirectoryEntry>();
  #watch: KeyDirectoryWatch | undefined;

  private constructor(private readonly bootstrap: readonly PublicKeyRecord[]) {}

  /** Without a directory: the broker's and the gateway's keys of jwks.json, no partner keys (the catalog's apply). */
  static fixed(peers: readonly PublicKeyRecord[]): GatewayKeyView {
    return new GatewayKeyView(peers);
  }

  /**
   * Loads and watches the directory (as the gateway identity); resolves once the stored entries are applied.
   * `on.tokenKeys` runs with the gateway entry's active token kids each time it is applied; `on.entry` with every
   * entry applied (the gateway's keyrings follow it).
   */
  static async watch(
    nc: NatsConnection,
    root: OperatorRootKey,
    logger: Logger,
    on: {
      readonly tokenKeys?: (activeKids: readonly string[]) => void;
      readonly entry?: (entry: DirectoryEntry) => void;
    } = {},
  ): Promise<GatewayKeyView> {
    const view = new GatewayKeyView([]);
    const kv: KV = await openKeyDirectoryBucket(nc);
    view.#watch = await KeyDirectoryWatch.start(
      kv,
      root,
      {
        applied: (entry) => {
          if (PUBLISHED.has(entry.party) || entry.clientKeys !== undefined) view.#entries.set(entry.party, entry);
          if (entry.party === GATEWAY_AUDIT_ID)
            on.tokenKeys?.((entry.tokenKeys ?? []).filter((k) => k.status === 'active').map((k) => k.jwk.kid));
          on.entry?.(entry);
        },
        refused: () => undefined, // logged by the watch; the party's last good entry stays in force
      },
      logger,
    );
    return view;
  }

  /** What the directory says of a gateway token kid at `nowMs` (TokenSigner.followDirectory). */
  tokenStatus(kid: string, nowMs: number): TokenKeyStatus {
    const key = this.#entries.get(GATEWAY_AUDIT_ID)?.tokenKeys?.find((k) => k.jwk.kid === kid);
    return key === undefined ? 'unlisted' : usable(key, nowMs) ? 'usable' : 'refused';
  }

  /** The public keys the JWKS lists beside the token keys held: usable token keys, then OKP keys, at `nowMs`. */
  publicKeys(nowMs: number): JWK[] {
    const out: JWK[] = [];
    for (const k of this.#entries.get(GATEWAY_AUDIT_ID)?.tokenKeys ?? []) if (usable(k, nowMs)) out.push({ ...k.jwk });
    if (this.#watch === undefined) {
      for (const r of this.bootstrap)
        if (PUBLISHED.get(r.service)?.includes(r.use) === true) out.push({ ...publicJwk(r) });
      return out;
    }
    for (const [party, uses] of PUBLISHED)
      for (const k of this.#entries.get(party)?.keys ?? [])
        if (uses.includes(k.jwk.use) && usable(k, nowMs)) out.push({ ...k.jwk });
    return out;
  }

  /**
   * A partner's client-assertion keys as the directory has them: the ones usable at `nowMs`, and every kid it lists
   * in any status (a catalog key the directory lists is decided by the directory). Undefined when it lists none.
   */
  clientKeys(party: string, nowMs: number): ClientKeySet | undefined {
    const keys = this.#entries.get(party)?.clientKeys;
    if (keys === undefined) return undefined;
    return {
      usable: keys.filter((k) => usable(k, nowMs)).map((k) => k.jwk),
      listed: new Set(keys.map((k) => k.jwk.kid)),
    };
  }

  stop(): void {
    this.#watch?.stop();
  }
}
