// FHIR R4 keeps a decimal's precision (datatypes.html#decimal): a number a publisher writes as JSON text reaches
// every subscriber as the same lexeme, through the SDK's sealing, the broker's opening, validation, projection and
// re-sealing, and the subscriber's opening — over a real nats-server. Property test over random decimal lexemes
// (trailing zeros, exponents, -0, integers past 2^53), plus a publisher's text with a duplicate member refused.
import fc from 'fast-check';
import { isLosslessNumber, parse } from 'lossless-json';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Delivered, PhiClient } from '../../src/sdk/client.js';
import { Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

/** RFC 8259 numbers, biased to what doubles lose: trailing zeros, long digit runs, exponents, negative zero. */
const decimalLexeme = fc
  .tuple(
    fc.constantFrom('', '-'),
    fc.oneof(fc.constant('0'), fc.stringMatching(/^[1-9][0-9]{0,24}$/)),
    fc.option(fc.stringMatching(/^\.[0-9]{1,20}$/), { nil: '' }),
    fc.option(fc.stringMatching(/^[eE][+-]?[0-9]{1,3}$/), { nil: '' }),
  )
  .map(([sign, int, frac, exp]) => `${sign}${int}${frac}${exp}`);

function observationText(id: string, lexeme: string): string {
  return (
    `{"resourceType":"Observation","id":"${id}","status":"final","code":{"text":"glucose"},` +
    `"subject":{"reference":"Patient/lexeme-1"},"valueQuantity":{"value":${lexeme},"unit":"mmol/l"}}`
  );
}

function deliveredLexeme(d: Delivered): string | undefined {
  const json = parse(d.resourceJson) as { valueQuantity?: { value?: unknown } };
  const v = json.valueQuantity?.value;
  return isLosslessNumber(v) ? v.toString() : undefined;
}

describe('number lexemes, publisher → broker → subscribers (real nats-server)', () => {
  let stack: TestStack;
  let ehr: PhiClient;
  let analytics: PhiClient;
  const got = new Map<string, Delivered[]>(); // original message id → deliveries
  const waiter = new Waiter();

  beforeAll(async () => {
    stack = await startTestStack({ tls: false });
    ehr = await stack.client('ehr');
    analytics = await stack.client('analytics');
    for (const c of [ehr, analytics]) {
      await c.subscribe('Observation', (d) => {
        got.set(d.provenance.messageId, [...(got.get(d.provenance.messageId) ?? []), d]);
        waiter.signal();
      });
    }
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('every decimal lexeme reaches both subscribers (full and de-identified profile) unchanged', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(decimalLexeme, async (lexeme) => {
        const r = await ehr.publish(observationText(`lex-${n++}`, lexeme));
        expect(r.status).toBe('accepted');
        if (r.status !== 'accepted') return;
        await waiter.until(() => (got.get(r.id)?.length ?? 0) === 2, 20_000, `deliveries of ${r.id}`);
        const deliveries = got.get(r.id) ?? [];
        expect(deliveries.map((d) => d.provenance.purpose).sort()).toStrictEqual(['HRESCH', 'TREAT']);
        for (const d of deliveries) expect(deliveredLexeme(d)).toBe(lexeme);
      }),
      {
        numRuns: 25,
        examples: [['6.30'], ['12345678901234567890'], ['-0'], ['1.0e2'], ['0.000'], ['1.0']],
      },
    );
  });

  it('a publisher text with a duplicate member is refused with E_JSON_MALFORMED naming its path, not its value', async () => {
    const text =
      '{"resourceType":"Observation","id":"dup-1","status":"final","code":{"text":"glucose"},' +
      '"subject":{"reference":"Patient/lexeme-1"},"valueQuantity":{"value":6.30,"value":9.99}}';
    const r = await ehr.publish(text);
    expect(r).toMatchObject({ status: 'rejected', code: 'E_JSON_MALFORMED', path: 'Observation.valueQuantity.value' });
    if (r.status === 'rejected') {
      expect(r.message).toBe('Observation.valueQuantity.value: duplicate member name (RFC 7493 §2.3)');
      expect(r.message).not.toMatch(/6\.30|9\.99/);
    }
    expect(got.has(r.id)).toBe(false);
  });
});
