// KEK id checks (src/crypto/kek.ts) remember ids they accepted: the verdict must stay exactly splitKekId's (and, for
// an envelope's keys[].kek, "two encryption kids"), before and after an id is remembered and after the memo is full.
import { describe, expect, it } from 'vitest';
import { isEncKekId, isKekId, kekId, splitKekId } from '../../src/crypto/kek.js';
import { parseKid } from '../../src/crypto/keys.js';

const IDS = [
  kekId('billing:enc:1', 'broker:enc:1'),
  'broker:enc:1~billing:enc:1', // not sorted
  'billing:enc:1',
  'a~b~c',
  kekId('billing:sig:1', 'broker:enc:1'), // sorted, but a signing kid
  kekId('registration:enc:2', 'broker:enc:12'),
  '',
  '~',
];

const expectedEnc = (id: string): boolean => {
  const kids = splitKekId(id);
  return kids !== undefined && kids.every((k) => parseKid(k)?.use === 'enc');
};

describe('KEK id checks', () => {
  it("give splitKekId's verdict, asked once, again (remembered) and after the memo filled up and was cleared", () => {
    const verdicts = (): [boolean, boolean][] => IDS.map((id) => [isKekId(id), isEncKekId(id)]);
    const expected = IDS.map((id): [boolean, boolean] => [splitKekId(id) !== undefined, expectedEnc(id)]);
    expect(verdicts()).toStrictEqual(expected);
    expect(verdicts()).toStrictEqual(expected);
    for (let i = 1; i <= 3000; i++) {
      expect(isKekId(kekId(`svc-${i}:enc:1`, 'broker:enc:1'))).toBe(true);
      expect(isEncKekId(kekId(`svc-${i}:enc:1`, 'broker:enc:1'))).toBe(true);
    }
    expect(verdicts()).toStrictEqual(expected);
    expect(expected.filter(([a]) => a)).toHaveLength(4); // the check can fail both ways
    expect(expected.filter(([, b]) => b)).toHaveLength(2);
  });
});
