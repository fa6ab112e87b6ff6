// The identifiers every party spells the same way: service, broker instance, message and resource-type
// names. Each is at most one NATS subject token and never carries PHI (docs/wire-format.md).

/** Service ids are one NATS subject token: lowercase letters, digits and dashes. */
export const SERVICE_ID_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/** The broker's own identity in the catalog's key space. */
export const BROKER_ID = 'broker';

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
