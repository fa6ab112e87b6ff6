// Provenance of broker deliveries (DESIGN.md property 4): the SHA-256 (FIPS 180-4) of the original envelope's exact
// bytes, base64url, as carried in `prov.hash`, so a subscriber or auditor can tie a delivery to the signed original.
import { createHash } from 'node:crypto';

export function envelopeHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}
