import { readFileSync } from 'node:fs';
import { PhiClient, initCrypto, readJwks, readServiceKeyVersions } from 'phi-broker';

await initCrypto(); // loads libsodium once per process
const dir = '.phi-broker'; // the data dir of `phi-broker up --port 4222`: keys/ and tls/ live there
const ehr = await PhiClient.connect({
  servers: 'nats://127.0.0.1:4222',
  tls: {
    caFile: `${dir}/tls/ca.cert.pem`,
    certFile: `${dir}/tls/services/ehr.cert.pem`,
    keyFile: `${dir}/tls/services/ehr.key.pem`,
  },
  service: 'ehr',
  keys: readServiceKeyVersions(`${dir}/keys`, 'ehr'), // every key version of this service, current first
  peers: readJwks(`${dir}/keys`), // every party's public keys, the broker's among them
});

// Each delivery arrives verified, decrypted and cut to this service's profile; resolving acknowledges it.
await ehr.subscribe('Observation', async ({ resource, provenance }) => {
  console.log(provenance.publisher, provenance.purpose, resource.code.coding?.[0]?.code);
});

const result = await ehr.publish(readFileSync('examples/observation.json', 'utf8')); // signed, sealed per field
if (result.status === 'rejected') console.error(result.code, result.path, result.message); // paths, never values
if (result.status === 'not_stored') console.error(result.code, 'not stored: safe to publish again');
