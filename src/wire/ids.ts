// The identifiers every party spells the same way: service, broker instance, message and resource-type
// names. Each is at most one NATS subject token and never carries PHI (docs/wire-format.md).

/** Service ids are one NATS subject token: lowercase letters, digits and dashes. */
export const SERVICE_ID_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/** The broker's own identity in the catalog's key space. */
export const BROKER_ID = 'broker';

/** The partner gateways' audit-signing party in the key space: signs the `gw.<id>` chains' checkpoints. */
export const GATEWAY_AUDIT_ID = 'gateway';

/** The operator commands' audit-signing party in the key space: signs the `cli.<id>` chains' checkpoints. */
export const OPERATOR_AUDIT_ID = 'operator';

/** Key-space names no catalog service may take: the broker and the audit-signing parties. */
export const RESERVED_PARTY_IDS: readonly string[] = [BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID];

/** A broker instance id (one audit chain): a NATS subject token and a FHIR id fragment, at most 40 characters. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,39}$/;

/** Message ids (and `prov.mid`): no `|` or `~`, so the AAD and KEK ids built from them stay unambiguous. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** `typ` and leaf path of raw mode: the whole input sealed as one value. */
export const RAW_TYPE = '$raw';

/** The shape of a FHIR resource type name (whether R4 defines it is checked separately). */
export const RESOURCE_TYPE_NAME_PATTERN = /^[A-Z][A-Za-z]{0,63}$/;

/** A FHIR resource type name or `$raw`. */
export const TYPE_PATTERN = /^(?:[A-Z][A-Za-z]{0,63}|\$raw)$/;

/**
 * A delivery's id, its `Nats-Msg-Id` on PHI_DELIVER: `<message id>.<subscriber>`. Audit record v3 leaves an id of this
 * form out of a delivered fact and derives it again (docs/audit.md "Record v3").
 */
export function deliveryId(messageId: string, service: string): string {
  return `${messageId}.${service}`;
}
