// Right-of-access state in NATS: each request in KV phi_access (key = request id), updated by compare-and-set
// on the key's revision so several broker processes never overwrite each other (as src/registry/store.ts);
// each service's sealed answer in the JetStream Object Store phi_access_answers (NATS ADR-20; answers may be
// larger than one message), named `<request id>.<service>`.
import { type KV, type NatsConnection, type ObjectStore } from 'nats';
import { kvCompareAndSet } from '../../nats/kv-cas.js';
import { SINGLE_NODE_REPLICAS, bucketPlacement, type Replicas } from '../../nats/setup.js';
import { BrokerError } from '../../wire/errors.js';
import { KV_BUCKETS, OBJECT_STORES } from '../../wire/names.js';
import { decodeRequest, encodeRequest, type AccessRequest } from '../protocol/request.js';

/**
 * KV phi_access and the object store phi_access_answers, created when missing (by the admin identity's provisioning
 * under mTLS, src/runtime/provision.ts; the broker then only reads their stream info). Neither view updates an
 * existing stream.
 */
export async function ensureAccessBuckets(
  nc: NatsConnection,
  replicas: Replicas = SINGLE_NODE_REPLICAS,
): Promise<{ kv: KV; answers: ObjectStore }> {
  const js = nc.jetstream();
  const kv = await js.views.kv(KV_BUCKETS.access, { history: 1, ...bucketPlacement(replicas) });
  const answers = await js.views.os(OBJECT_STORES.accessAnswers, bucketPlacement(replicas));
  return { kv, answers };
}

export class AccessStore {
  private constructor(
    readonly kv: KV,
    readonly answers: ObjectStore,
  ) {}

  static async open(nc: NatsConnection, replicas: Replicas = SINGLE_NODE_REPLICAS): Promise<AccessStore> {
    const { kv, answers } = await ensureAccessBuckets(nc, replicas);
    return new AccessStore(kv, answers);
  }

  async create(r: AccessRequest): Promise<void> {
    await this.kv.create(r.id, encodeRequest(r));
  }

  async get(id: string): Promise<AccessRequest> {
    const entry = await this.kv.get(id);
    if (entry === null || entry.operation !== 'PUT')
      throw new BrokerError('E_ACCESS_UNKNOWN', `id: no access request ${id} (see access list)`, { path: 'id' });
    return decodeRequest(entry.value);
  }

  /**
   * Applies `change` by compare-and-set (src/nats/kv-cas.ts). `change` may throw (e.g. E_ACCESS_EXTENDED) or return
   * the same object to write nothing. Returns the request as stored.
   */
  async update(
    id: string,
    change: (r: AccessRequest) => AccessRequest,
  ): Promise<{ request: AccessRequest; changed: boolean }> {
    const { value, changed } = await kvCompareAndSet(
      this.kv,
      id,
      { decode: decodeRequest, encode: encodeRequest },
      (current) => {
        if (current === undefined)
          throw new BrokerError('E_ACCESS_UNKNOWN', `id: no access request ${id} (see access list)`, { path: 'id' });
        return change(current);
      },
      { path: 'id' },
    );
    if (value === undefined)
      throw new BrokerError('E_ACCESS_UNKNOWN', `id: no access request ${id} (see access list)`, { path: 'id' });
    return { request: value, changed };
  }

  async list(): Promise<AccessRequest[]> {
    const out: AccessRequest[] = [];
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    for (const k of keys.sort()) {
      const entry = await this.kv.get(k);
      if (entry !== null && entry.operation === 'PUT') out.push(decodeRequest(entry.value));
    }
    return out.sort((a, b) => a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : 1));
  }

  async putAnswer(id: string, service: string, sealed: Uint8Array): Promise<void> {
    await this.answers.putBlob({ name: `${id}.${service}` }, sealed);
  }

  async getAnswer(id: string, service: string): Promise<Uint8Array | undefined> {
    return (await this.answers.getBlob(`${id}.${service}`)) ?? undefined;
  }
}
