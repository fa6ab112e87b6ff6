// Service keys, public surface: key pairs and kids (keypairs.ts), their RFC 8037 JWK forms (jwk.ts) and the
// development key files (keyfiles.ts). Import from here unless you need one of those concepts alone.
export {
  encryptionKeyFromSecret,
  generateServiceKeys,
  keysVersion,
  makeKid,
  parseKid,
  publicRecords,
  signingKeyFromSeed,
  type EncryptionKeyPair,
  type KeyUse,
  type ParsedKid,
  type PublicKeyRecord,
  type ServiceKeys,
  type SigningKeyPair,
} from './keypairs.js';
export { privateJwks, publicJwk, recordsFromJwks, serviceKeysFromJwks, type Jwks, type OkpJwk } from './jwk.js';
export {
  ensureDevKeys,
  jwksFile,
  privateKeyFile,
  readJwks,
  readServiceKeyVersions,
  readServiceKeys,
  rotateServiceKeys,
  writeJwks,
  writeServiceKeys,
  type DevKeys,
} from './keyfiles.js';
