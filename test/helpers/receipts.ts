// Collects every broker receipt (core NATS subscription on phi.receipt.>) so tests can await verdicts for
// messages they published by hand, outside the SDK.
import type { NatsConnection } from 'nats';
import { decodeReceipt, type Receipt } from '../../src/wire/receipt.js';
import { Waiter } from './stack.js';

export class ReceiptLog {
  readonly byId = new Map<string, Receipt[]>();
  private readonly waiter = new Waiter();

  constructor(nc: NatsConnection) {
    nc.subscribe('phi.receipt.>', {
      callback: (err, msg) => {
        if (err !== null) return;
        const r = decodeReceipt(msg.data);
        const list = this.byId.get(r.id) ?? [];
        list.push(r);
        this.byId.set(r.id, list);
        this.waiter.signal();
      },
    });
  }

  async next(id: string, count = 1): Promise<Receipt> {
    await this.waiter.until(() => (this.byId.get(id)?.length ?? 0) >= count, 20_000, `receipt ${count} for ${id}`);
    const list = this.byId.get(id) ?? [];
    const r = list[count - 1];
    if (r === undefined) throw new Error('unreachable');
    return r;
  }
}
