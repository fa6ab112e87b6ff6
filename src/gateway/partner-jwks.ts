// Each partner's client-assertion keys: inline from its catalog `jwks`, or fetched from its registered JWKS URL
// (SMART Backend Services `jwks_url`) with jose createRemoteJWKSet — one remote set per partner, so a key served at
// another partner's URL never verifies this partner's assertion. Bounded timeout, response size, cache and cooldown
// (an unknown kid refetches at most once per cooldown); a failed fetch is an invalid_client refusal, never a crash.
import { request } from 'node:https';
import {
  createRemoteJWKSet,
  customFetch,
  errors as joseErrors,
  type FetchImplementation,
  type JWK,
  type JWSHeaderParameters,
  type RemoteJWKSet,
} from 'jose';
import { partnerJwkSchema } from '../catalog/schema.js';
import type { PartnerDef, PartnerJwk } from '../catalog/types.js';
import { OAuthError } from './oauth-error.js';

export interface JwksFetchOptions {
  /** Abort a fetch after this long (jose `timeoutDuration`). */
  readonly timeoutMs: number;
  /** After a fetch, a kid not in the set refetches only once this has passed (jose `cooldownDuration`). */
  readonly cooldownMs: number;
  /** A fetched set is used this long before it is fetched again (jose `cacheMaxAge`). */
  readonly cacheMaxAgeMs: number;
  /** PEM CA certificates the JWKS URLs' servers are verified with (default: Node's root store). */
  readonly ca?: string;
}

export const DEFAULT_JWKS_FETCH: JwksFetchOptions = { timeoutMs: 5_000, cooldownMs: 30_000, cacheMaxAgeMs: 600_000 };

/** A JWK Set of a few keys is a few KiB; anything past this is refused unread. */
const MAX_JWKS_BYTES = 64 * 1024;
/** The public members a registered key may have (src/catalog/schema.ts); others in a served JWK are dropped. */
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use'] as const;
/** Private members of EC, OKP, RSA and oct JWKs (RFC 7518 §6): a set serving any of them is refused. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const refuseKid = (message: string): OAuthError =>
  new OAuthError('invalid_client', 'E_PARTNER_AUTH', 'client_assertion.header.kid', message);

export class PartnerKeys {
  private readonly remote = new Map<string, RemoteJWKSet>();

  constructor(partners: Iterable<PartnerDef>, opts: JwksFetchOptions = DEFAULT_JWKS_FETCH) {
    for (const p of partners)
      if (p.jwksUrl !== undefined)
        this.remote.set(
          p.clientId,
          createRemoteJWKSet(new URL(p.jwksUrl), {
            timeoutDuration: opts.timeoutMs,
            cooldownDuration: opts.cooldownMs,
            cacheMaxAge: opts.cacheMaxAgeMs,
            [customFetch]: httpsFetch(opts.ca),
          }),
        );
  }

  /**
   * The keys of `partner` whose kid is the header's: its inline keys, or those its JWKS URL serves (fetched when the
   * cache is empty or stale, or once per cooldown for an unknown kid). Throws OAuthError invalid_client.
   */
  async keysFor(partner: PartnerDef, header: JWSHeaderParameters): Promise<PartnerJwk[]> {
    const kid = header.kid;
    if (partner.jwks !== undefined) return partner.jwks.keys.filter((k) => k.kid === kid);
    const set = this.remote.get(partner.clientId);
    if (set === undefined) return [];
    try {
      await set(header);
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey) return [];
      if (err instanceof joseErrors.JWKSMultipleMatchingKeys)
        throw refuseKid('names more than one key at the registered JWKS URL');
      throw new OAuthError(
        'invalid_client',
        'E_PARTNER_JWKS',
        'jwks_url',
        `the client's registered JWKS URL could not be used: ${fetchFailure(err)}`,
      );
    }
    const served = (set.jwks()?.keys ?? []).filter((k) => k.kid === kid);
    return served.map((k) => {
      if (PRIVATE_MEMBERS.some((m) => m in k))
        throw refuseKid('the key at the registered JWKS URL carries private members');
      const parsed = partnerJwkSchema.safeParse(publicMembers(k));
      if (!parsed.success)
        throw refuseKid('the key at the registered JWKS URL is not EC P-384, RSA of 2048 bits or more, or Ed25519');
      return parsed.data as unknown as PartnerJwk;
    });
  }
}

function publicMembers(k: JWK): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of PUBLIC_MEMBERS) if (k[m] !== undefined) out[m] = k[m];
  return out;
}

/** Why a fetch failed, in words that name no value from the response. */
function fetchFailure(err: unknown): string {
  if (err instanceof joseErrors.JWKSTimeout) return 'timed out';
  if (err instanceof joseErrors.JWKSInvalid) return 'the response is not a JWK Set';
  if (err instanceof joseErrors.JOSEError) return 'the response is not 200 OK with a JSON JWK Set';
  return 'unreachable';
}

/** jose's fetch over node:https, so the JWKS server is verified with `ca` when given; bounded in size. */
function httpsFetch(ca: string | undefined): FetchImplementation {
  return (url, options) =>
    new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'GET',
          headers: Object.fromEntries(options.headers),
          signal: options.signal,
          ...(ca === undefined ? {} : { ca }),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_JWKS_BYTES) req.destroy(new Error('the JWK Set response is too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            const status = res.statusCode ?? 502;
            // A Response holds 200–599 only; anything else is as good as a bad gateway.
            resolve(new Response(Buffer.concat(chunks), { status: status >= 200 && status <= 599 ? status : 502 }));
          });
          res.on('error', reject);
        },
      );
      // jose maps a TimeoutError to JWKSTimeout: the signal's reason is that error.
      req.on('error', (err) => reject(options.signal.aborted ? options.signal.reason : err));
      req.end();
    });
}
