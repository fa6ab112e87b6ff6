// `phi-broker publish` output and exit code (src/cli/publish.ts, docs/publishing.md): one line per result, and the
// exit code of the result that asks the most of a script (4 resend, 1 fix, 3 wait, 0 done).
import { describe, expect, it } from 'vitest';
import { exitCodeOf, formatResult } from '../../src/cli/publish.js';
import type { PublishResult } from '../../src/sdk/client.js';

const accepted: PublishResult = { status: 'accepted', id: 'a', deliveries: 2 };
const rejected: PublishResult = {
  status: 'rejected',
  id: 'r',
  code: 'E_FHIR_INVALID',
  message: 'Patient.gender: bad code',
  path: 'Patient.gender',
};
const stored: PublishResult = {
  status: 'stored',
  id: 's',
  message: 'JetStream stored the message; no receipt from the broker by the deadline',
};
const notStored: PublishResult = {
  status: 'not_stored',
  id: 'n',
  code: 'E_NOT_STORED',
  message: 'no ack',
  inDoubt: true,
};
const queueFull: PublishResult = {
  status: 'not_stored',
  id: 'q',
  code: 'E_QUEUE_FULL',
  message: 'full',
  inDoubt: false,
};

describe('phi-broker publish results', () => {
  it('prints each kind of result on one line', () => {
    expect([accepted, rejected, stored, notStored, queueFull].map(formatResult)).toEqual([
      'accepted a (2 deliveries)',
      'rejected r E_FHIR_INVALID: Patient.gender: bad code',
      'stored s: JetStream stored the message; no receipt from the broker by the deadline',
      'not_stored n E_NOT_STORED: no ack (in doubt: an attempt reached NATS unanswered)',
      'not_stored q E_QUEUE_FULL: full',
    ]);
  });

  it.each([
    [[accepted], 0],
    [[accepted, stored], 3],
    [[stored, rejected], 1],
    [[rejected, queueFull, stored], 4],
    [[notStored], 4],
    [[], 0],
  ] as [PublishResult[], number][])('exit code of %j is %i', (results, code) => {
    expect(exitCodeOf(results)).toBe(code);
  });
});
