// `phi-broker partner token --as <partner> --key <file.jwk>`: tries the partner gateway by hand. Signs a SMART Backend
// Services client assertion (RFC 7523) with the partner's private JWK, asks the gateway's token endpoint for an
// access token with the partner's registered scopes (or --scope) and prints the token alone, for
// `TOKEN=$(phi-broker partner token …)`. The key never leaves this process; only the signed assertion is sent. A
// partner with `mtls` connects with its client certificate from the TLS directory (RFC 8705).
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { request } from 'node:https';
import type { Writable } from 'node:stream';
import { SignJWT, importJWK, type JWK } from 'jose';
import type { BrokerConfig } from '../config/config.js';
import { ASSERTION_ALGORITHMS, JWT_BEARER_ASSERTION } from '../gateway/assertion.js';
import { cliTlsDir, loadConfiguredCatalog } from '../runtime/data-dir.js';
import { defaultTlsDir, tlsLayout } from '../tls/store.js';
import { BrokerError, isBrokerErrorCode } from '../wire/errors.js';

export interface PartnerTokenOptions {
  /** The partner's catalog service id. */
  readonly as: string;
  /** A private JWK (or a JWK Set whose first key is used) of a key the catalog registers for the partner. */
  readonly key?: string;
  /** Space-separated SMART scopes; default every scope the catalog registers for the partner. */
  readonly scope?: string;
  /** The gateway's public base URL; default PHI_BROKER_GATEWAY_BASE_URL or https://localhost:<gatewayPort>. */
  readonly url?: string;
}

export async function runPartnerToken(config: BrokerConfig, opts: PartnerTokenOptions, out: Writable): Promise<void> {
  const catalog = loadConfiguredCatalog(config);
  const partner = catalog.services.get(opts.as)?.partner;
  if (partner === undefined)
    throw new BrokerError('E_USAGE', '--as: not a partner of the catalog (a service with a partner: block)', {
      path: '--as',
    });
  if (opts.key === undefined)
    throw new BrokerError('E_USAGE', "--key: the partner's private JWK file (its public half in partner.jwks)", {
      path: '--key',
    });
  const jwk = readJwk(opts.key);
  // Inline keys are checked here; keys at a JWKS URL only the gateway fetches.
  const registered = partner.jwks?.keys.find((k) => k.kid === jwk.kid);
  if (partner.jwks !== undefined && registered === undefined)
    throw new BrokerError('E_USAGE', `--key: its kid is not among ${opts.as}'s registered keys (partner.jwks)`, {
      path: '--key',
    });
  const alg = jwk.alg ?? registered?.alg;
  if (alg === undefined || !(ASSERTION_ALGORITHMS as readonly string[]).includes(alg))
    throw new BrokerError('E_USAGE', `--key: alg must be one of ${ASSERTION_ALGORITHMS.join(', ')}`, {
      path: '--key',
    });
  const base = (opts.url ?? config.gatewayBaseUrl ?? `https://localhost:${config.gatewayPort}`).replace(/\/$/, '');
  const tokenUrl = `${base}/auth/token`;
  const assertion = await new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg, kid: jwk.kid as string, typ: 'JWT' })
    .setIssuer(partner.clientId)
    .setSubject(partner.clientId)
    .setAudience(tokenUrl)
    .setIssuedAt()
    .setExpirationTime('4m')
    .sign(await importJWK(jwk, alg));
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER_ASSERTION,
    client_assertion: assertion,
    scope: opts.scope ?? partner.scopes.join(' '),
  }).toString();
  const tlsDir = cliTlsDir(config) ?? defaultTlsDir(config.dataDir);
  const caFile = tlsLayout(tlsDir).ca.certFile;
  const answer = await post(tokenUrl, form, {
    ...(existsSync(caFile) ? { ca: readFileSync(caFile, 'utf8') } : {}),
    ...(partner.mtls === undefined ? {} : clientCertificate(tlsDir, opts.as)),
  });
  const token = answer.json['access_token'];
  if (answer.status === 200 && typeof token === 'string') {
    out.write(`${token}\n`);
    return;
  }
  const description = String(answer.json['error_description'] ?? answer.json['error'] ?? `HTTP ${answer.status}`);
  const code = /^(E_[A-Z_]+)/.exec(description)?.[1];
  throw new BrokerError(
    code !== undefined && isBrokerErrorCode(code) ? code : 'E_PARTNER_AUTH',
    `the token endpoint ${tokenUrl} refused: ${description}`,
  );
}

function readJwk(file: string): JWK {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // Never echo the file: it holds a private key.
    throw new BrokerError('E_USAGE', '--key: not a readable JSON file', { path: '--key' });
  }
  const keys = (json as { keys?: unknown }).keys;
  const jwk = (Array.isArray(keys) ? keys[0] : json) as JWK | undefined;
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.kid !== 'string' || jwk.d === undefined)
    throw new BrokerError('E_USAGE', '--key: expected a private JWK with a kid', { path: '--key' });
  return jwk;
}

/** The partner's development client certificate `certs init` issued (`<tls-dir>/partners/<id>.*`), for mTLS. */
function clientCertificate(tlsDir: string, service: string): { cert: string; key: string } {
  const files = tlsLayout(tlsDir).partner(service);
  if (!existsSync(files.certFile) || !existsSync(files.keyFile))
    throw new BrokerError(
      'E_SETUP_MISSING',
      `${service} authenticates with mutual TLS (partner.mtls) and has no client certificate in ${dirname(files.certFile)}: run \`phi-broker certs init\``,
    );
  return { cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') };
}

function post(
  url: string,
  body: string,
  tls: { readonly ca?: string; readonly cert?: string; readonly key?: string },
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ...tls,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch {
            json = {};
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', (err) =>
      reject(new BrokerError('E_NATS_UNREACHABLE', `the gateway at ${url} did not answer: ${err.message}`)),
    );
    req.end(body);
  });
}
