// Posts notifications to a partner's rest-hook endpoint over HTTPS (node:https): the Bundle as
// application/fhir+json, its detached JWS in X-PHI-Broker-Signature, the headers the subscription asked for. Any
// answer counts only by its status; a network error or a timeout is status 0.
import { request } from 'node:https';
import type { SubscriptionRecord } from './model.js';
import { SIGNATURE_HEADER, type Deliverer } from './worker.js';

export function httpsDeliverer(ca: string | undefined): Deliverer {
  return {
    post: (sub: SubscriptionRecord, body: string, signature: string) =>
      new Promise<number>((resolve) => {
        const headers: Record<string, string> = {};
        for (const line of sub.headers) {
          const i = line.indexOf(':');
          headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        Object.assign(headers, {
          'content-type': 'application/fhir+json; charset=utf-8',
          [SIGNATURE_HEADER.toLowerCase()]: signature,
        });
        const req = request(
          sub.endpoint,
          { method: 'POST', headers, timeout: sub.timeoutS * 1000, ...(ca === undefined ? {} : { ca }) },
          (res) => {
            res.resume(); // the body is not read: only the status counts
            res.on('end', () => resolve(res.statusCode ?? 0));
            res.on('error', () => resolve(0));
          },
        );
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(0));
        req.end(body);
      }),
  };
}
