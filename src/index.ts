// phi-broker's public surface: what a service imports. Names are exported one by one; everything else
// is internal and may change without notice.
export { PhiClient } from './sdk/client.js';
export { serviceConnectionOptions } from './nats/connect-options.js';
export type { NatsTlsFiles } from './nats/connect-options.js';
export type {
  Delivered,
  DeliveryHandler,
  PhiClientOptions,
  Provenance,
  PublishOptions,
  PublishResult,
  ResourceOf,
  ResourceType,
  Subscription,
} from './sdk/client.js';
export type { AccessQuestion, AccessRequestHandler } from './sdk/access.js';
export type { AccessRequestSummary } from './sdk/access-requests.js';
export { BrokerError, ERROR_CODES, isBrokerError, isBrokerErrorCode } from './wire/errors.js';
export type { BrokerErrorCode } from './wire/errors.js';
export { initCrypto } from './crypto/sodium.js';
export { openServiceKeys, readJwks, readServiceKeyVersions, readServiceKeys } from './runtime/key-files.js';
// Keys at rest (docs/keys-at-rest.md): a service opens its sealed key file with the same providers as the broker.
export { keyProtection } from './runtime/key-protection.js';
export type { KeyProtection } from './runtime/key-protection.js';
export type { KekDescriptor, KeyProvider } from './crypto/key-envelope.js';
export { pinnedRootKey } from './crypto/key-directory.js';
export type { OperatorRootKey } from './crypto/key-directory.js';
export type { PublicKeyRecord, ServiceKeys } from './crypto/keys.js';
