// Service keys, public surface: key pairs and kids (keypairs.ts) and their RFC 8037 JWK forms (jwk.ts). The key
// files on disk are src/runtime/key-files.ts.
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
