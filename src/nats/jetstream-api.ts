// The JetStream API subjects nats-server 2.9 answers (server/jetstream_api.go; NATS ADR-1 "JetStream JSON API
// Design"), spelled once for the permission generator (permissions.ts). phi-broker's own subjects live in
// names.ts; these are NATS's. The consumer-create form `$JS.API.CONSUMER.CREATE.<stream>.<consumer>.<filter>`
// carries the filter subject (2.9+, what nats.js 2.29 sends for a durable), and the server refuses a request
// whose body names another filter — so allowing exactly that subject pins the consumer's filter.
const API = '$JS.API';

export const jsApi = {
  /** Account info; nats.js calls it when a JetStream manager is created. */
  accountInfo: `${API}.INFO`,
  streamInfo: (stream: string): string => `${API}.STREAM.INFO.${stream}`,
  streamMsgGet: (stream: string): string => `${API}.STREAM.MSG.GET.${stream}`,
  /** Direct get: `$JS.API.DIRECT.GET.<stream>` (body) and `.<stream>.<subject>` (last by subject, as KV uses it). */
  directGet: (stream: string): string => `${API}.DIRECT.GET.${stream}`,
  directGetAll: (stream: string): string => `${API}.DIRECT.GET.${stream}.>`,
  consumerInfo: (stream: string, consumer: string): string => `${API}.CONSUMER.INFO.${stream}.${consumer}`,
  /** Create/update of a named consumer, with its filter subject when it has one. */
  consumerCreate: (stream: string, consumer: string, filter?: string): string =>
    filter === undefined
      ? `${API}.CONSUMER.CREATE.${stream}.${consumer}`
      : `${API}.CONSUMER.CREATE.${stream}.${consumer}.${filter}`,
  /**
   * Create of an ephemeral or ordered consumer on one stream (KV watch/keys: nats.js sends the bare form, or
   * `.<name>.<filter>` on 2.9+, and the bare form again when an ordered consumer resets).
   */
  consumerCreateEphemeral: (stream: string): readonly string[] => [
    `${API}.CONSUMER.CREATE.${stream}`,
    `${API}.CONSUMER.CREATE.${stream}.>`,
  ],
  /** Flow-control replies of a push consumer on one stream (`$JS.FC.<stream>.<consumer>.<id>`; ordered consumers). */
  flowControl: (stream: string): string => `$JS.FC.${stream}.>`,
  consumerNext: (stream: string, consumer: string): string => `${API}.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
  /** Acknowledgements (ack, nak, term, in-progress) of messages a consumer delivered. */
  ack: (stream: string, consumer: string): string => `$JS.ACK.${stream}.${consumer}.>`,
  all: `${API}.>`,
  directGetAny: `${API}.DIRECT.GET.>`,
  streamAny: `${API}.STREAM.>`,
  streamList: `${API}.STREAM.LIST`,
  streamNames: `${API}.STREAM.NAMES`,
  consumerCreateAny: `${API}.CONSUMER.CREATE.>`,
  consumerDurableCreateAny: `${API}.CONSUMER.DURABLE.CREATE.>`,
  consumerDeleteAny: `${API}.CONSUMER.DELETE.>`,
  consumerListAny: `${API}.CONSUMER.LIST.>`,
  consumerNamesAny: `${API}.CONSUMER.NAMES.>`,
  consumerLeaderAny: `${API}.CONSUMER.LEADER.>`,
  metaAny: `${API}.META.>`,
  serverAny: `${API}.SERVER.>`,
  accountAny: `${API}.ACCOUNT.>`,
  kvAny: '$KV.>',
  kv: (bucket: string): string => `$KV.${bucket}.>`,
  kvStream: (bucket: string): string => `KV_${bucket}`,
  objAny: '$O.>',
  /** Object store chunks and metadata: `$O.<bucket>.C.<nuid>`, `$O.<bucket>.M.<name>` (ADR-20). */
  obj: (bucket: string): string => `$O.${bucket}.>`,
  objStream: (bucket: string): string => `OBJ_${bucket}`,
  flowControlAny: '$JS.FC.>',
} as const;
