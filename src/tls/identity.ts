// Who a client certificate says it is, and the NATS user that identity maps to. nats-server 2.9
// (`verify_and_map`, server/auth.go checkClientTLSCertSubject) tries a client certificate's e-mail SANs, DNS SANs
// and URI SANs first, then the subject as Go prints it (`pkix.Name.ToRDNSequence().String()`, RFC 2253 order:
// the last RDN of the DER sequence first). Client certificates here carry no SAN, so the subject decides; the
// DER order is O, OU, CN, which Go prints as `CN=<id>,OU=<kind>,O=phi-broker` — the user name in the config.
import { BROKER_ID } from '../wire/ids.js';

export const IDENTITY_ORGANIZATION = 'phi-broker';

/**
 * `service`: a catalog service; `broker`: the broker processes; `admin`: provisioning alone (creating and changing
 * streams, buckets, consumers); `operator`: the routine operator commands (consent, access, registry, disclosures,
 * quarantine, audit), which write restrictions and access commands but manage no stream; `auditor`: the read-only
 * operator commands (audit, registry show, disclosures, access status/list/export, consent list, quarantine
 * list/show), reading and nothing else; `gateway`: the partner gateways (its jti and idempotency buckets, its audit
 * chain, and publishing as each partner it fronts).
 */
export type IdentityKind = 'service' | 'broker' | 'admin' | 'operator' | 'auditor' | 'gateway';

export interface Identity {
  readonly kind: IdentityKind;
  /** The service id, `broker`, `admin`, `operator`, `auditor` or `gateway`. */
  readonly id: string;
}

export const BROKER_IDENTITY: Identity = { kind: 'broker', id: BROKER_ID };
export const ADMIN_IDENTITY: Identity = { kind: 'admin', id: 'admin' };
export const OPERATOR_IDENTITY: Identity = { kind: 'operator', id: 'operator' };
export const AUDITOR_IDENTITY: Identity = { kind: 'auditor', id: 'auditor' };
export const GATEWAY_IDENTITY: Identity = { kind: 'gateway', id: 'gateway' };

export function serviceIdentity(service: string): Identity {
  return { kind: 'service', id: service };
}

/**
 * The one NATS route identity of a cluster (docs/deployment.md). nats-server 2.9 maps a route's certificate to a single
 * expected user (`cluster.authorization.user` with `tls.verify_and_map`), so every node's route certificate carries
 * this subject; a client certificate from the same CA maps to its own user and is refused as a route.
 */
export const ROUTE_SUBJECT = `O=${IDENTITY_ORGANIZATION}, OU=route, CN=route`;
/** The user nats-server derives from ROUTE_SUBJECT (RFC 2253 order, as natsUser). */
export const ROUTE_USER = `CN=route,OU=route,O=${IDENTITY_ORGANIZATION}`;

/** Subject as written into the certificate (@peculiar/x509 keeps this order in the DER encoding). */
export function certificateSubject(identity: Identity): string {
  return `O=${IDENTITY_ORGANIZATION}, OU=${identity.kind}, CN=${identity.id}`;
}

/** The NATS user name nats-server 2.9 derives from that certificate (RFC 2253 order, no spaces). */
export function natsUser(identity: Identity): string {
  return `CN=${identity.id},OU=${identity.kind},O=${IDENTITY_ORGANIZATION}`;
}
