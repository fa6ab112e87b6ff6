// `phi-broker quarantine list|show` against a real broker's PHI_QUARANTINE: list names code, path and
// sender and never shows input; show --decrypt recovers the original for the operator holding the key.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');
let stack: TestStack;
let rejectedId: string;

beforeAll(async () => {
  stack = await startTestStack();
  const registration = await stack.client('registration');
  const r = await registration.publish({
    resourceType: 'Patient',
    id: 'q1',
    name: [{ family: 'Quarantinova', nickname: 'Q' }],
  });
  expect(r).toMatchObject({ status: 'rejected', code: 'E_UNKNOWN_ELEMENT' });
  rejectedId = r.id;
});

afterAll(async () => {
  await stack?.stop();
});

function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args, '--data-dir', stack.config.dataDir], {
    env: { ...process.env, ...stack.env },
  });
}

it('list shows code, path, sender and message id, and no input', async () => {
  const { stdout } = await cli('quarantine', 'list', '--json');
  const records = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(records).toHaveLength(1);
  expect(records[0]).toMatchObject({
    code: 'E_UNKNOWN_ELEMENT',
    path: 'Patient.name[0].nickname',
    sender: 'registration',
    type: 'Patient',
    messageId: rejectedId,
  });
  expect(records[0]).not.toHaveProperty('sealed');
  expect(stdout).not.toContain('Quarantinova');
  const text = await cli('quarantine', 'list');
  expect(text.stdout).toContain('E_UNKNOWN_ELEMENT');
  expect(text.stdout).toContain('1 record');
});

it('show --decrypt opens the sealed original with the broker keys', async () => {
  const plain = await cli('quarantine', 'show', 'q-1');
  expect(plain.stdout).not.toContain('Quarantinova');
  const { stdout } = await cli('quarantine', 'show', 'q-1', '--decrypt');
  expect(stdout).toContain(`envelope ${rejectedId} from registration (Patient)`);
  expect(stdout).toContain('"family": "Quarantinova"');
  await expect(cli('quarantine', 'show', 'q-999')).rejects.toMatchObject({ code: 1 });
});

it('a message in PHI_QUARANTINE that is not a broker record is skipped and counted, not fatal', async () => {
  const nc = await stack.connect('forger');
  await nc.jetstream().publish('phi.quarantine.registration', new TextEncoder().encode('not a record'));
  const { stdout, stderr } = await cli('quarantine', 'list');
  expect(stdout).toContain('E_UNKNOWN_ELEMENT');
  expect(stdout).toContain('1 record');
  expect(stderr).toContain('skipped 1 message(s) in PHI_QUARANTINE that are not broker records');
});
