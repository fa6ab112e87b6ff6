// Logging (src/log/log.ts): redaction as the second guard — a log call carrying a resource, raw data or a secret key
// writes none of its content — and error fields that never include a foreign error's message.
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateServiceKeys } from '../../src/crypto/keys.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { BrokerError } from '../../src/wire/errors.js';
import { createLogger, errorFields, errorStack, redactFields } from '../../src/log/log.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
  records(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

// A synthetic person's PHI; every string here is searched for in what was logged.
const PHI = ['Thistlewood', 'Anneliese', '1949-12-01', 'SSN-000-11-2222', '+1-555-0111-9999', '88 Vanishing Court'];
const resource = {
  resourceType: 'Patient',
  id: 'p1',
  name: [{ family: 'Thistlewood', given: ['Anneliese'] }],
  birthDate: '1949-12-01',
  identifier: [{ value: 'SSN-000-11-2222' }],
  telecom: [{ value: '+1-555-0111-9999' }],
  address: [{ line: ['88 Vanishing Court'] }],
};

function logged(fn: (log: ReturnType<typeof createLogger>) => void): Capture {
  const out = new Capture();
  fn(createLogger({ destination: out, level: 'trace' }));
  return out;
}

function expectNoPhi(text: string): void {
  for (const s of PHI) expect(text).not.toContain(s);
}

beforeAll(async () => {
  await initCrypto();
});

describe('createLogger redaction', () => {
  it.each([
    ['resource', { resource }],
    ['data (text)', { data: JSON.stringify(resource) }],
    ['data (bytes)', { data: Buffer.from(JSON.stringify(resource)) }],
    ['body', { body: resource }],
    ['raw', { raw: JSON.stringify(resource) }],
    ['value', { value: 'Thistlewood' }],
    ['patient', { patient: resource }],
    [
      'an audit fact (its patientRef, one or two levels down)',
      { fact: { subject: { patientRef: 'Patient/Thistlewood' } }, patientRef: 'Patient/Thistlewood' },
    ],
    ['nested one level: msg.resource / msg.data', { msg: { resource, data: JSON.stringify(resource) } }],
    ['headers', { headers: { 'Phi-Note': 'Thistlewood' } }],
    [
      'deeper than two levels, and inside arrays',
      { a: { b: { c: { resource } } }, list: [{ data: JSON.stringify(resource) }, [{ value: 'Thistlewood' }]] },
    ],
    [
      'a class instance holding one',
      {
        holder: new (class Holder {
          readonly patient = resource;
        })(),
      },
    ],
  ])('a log call with %s writes none of its content', (_n, fields) => {
    const out = logged((log) => log.info({ event: 'x', ...fields }, 'message'));
    expectNoPhi(out.text);
    expect(out.text).toContain('[redacted]');
    expect(out.records()[0]?.['event']).toBe('x');
  });

  it('a secret key (raw, or inside a key pair object) never reaches the log', () => {
    const keys = generateServiceKeys('ehr');
    const sk = Buffer.from(keys.sign.secretKey);
    const enc = Buffer.from(keys.enc.secretKey);
    const forms = [
      sk.toString('base64'),
      sk.toString('base64url'),
      sk.toString('hex'),
      enc.toString('base64url'),
      enc.toString('hex'),
    ];
    const out = logged((log) => {
      log.info({ secretKey: sk.toString('base64url') }, 'a');
      log.info({ signer: { kid: keys.sign.kid, secretKey: sk.toString('hex') } }, 'b');
      log.info({ keys }, 'c');
      log.info({ kek: enc.toString('base64url'), key: enc.toString('hex'), d: sk.toString('base64url') }, 'd');
    });
    for (const f of forms) expect(out.text).not.toContain(f);
    expect(out.records()).toHaveLength(4);
    // ids stay readable: they are what the logs are for
    expect(out.text).toContain('ehr:sig:1');
  });

  it("redaction copies: the caller's object is left as it was, and a line without a redacted field is logged as is", () => {
    const fields = { event: 'x', message: { resource, id: 'm-1' }, ids: ['a', 'b'] };
    const before = JSON.stringify(fields);
    const out = logged((log) => log.info(fields, 'm'));
    expect(JSON.stringify(fields)).toBe(before);
    expect(out.records()[0]).toMatchObject({
      event: 'x',
      message: { resource: '[redacted]', id: 'm-1' },
      ids: ['a', 'b'],
    });
    expect(redactFields({ event: 'y', n: 1, list: [1, 'two'] })).toEqual({ event: 'y', n: 1, list: [1, 'two'] });
    const bytes = Buffer.from('not walked');
    expect(redactFields({ b: bytes }).b).toBe(bytes);
  });

  it("a child logger's bindings are redacted like a line's fields", () => {
    const out = logged((log) => {
      const child = log.child({ component: 'c', patient: 'Thistlewood', job: { resource } });
      child.info({ event: 'y' }, 'm');
      child.child({ step: 2, value: '88 Vanishing Court' }).info({ event: 'z' }, 'n');
    });
    expectNoPhi(out.text);
    expect(out.records()[0]).toMatchObject({
      component: 'c',
      patient: '[redacted]',
      job: { resource: '[redacted]' },
      event: 'y',
    });
    expect(out.records()[1]).toMatchObject({ component: 'c', step: 2, value: '[redacted]', event: 'z' });
  });

  it('err.cause is redacted (a cause may be a foreign error quoting input)', () => {
    const out = logged((log) => log.error({ err: { code: 'E_DECRYPT', cause: 'Thistlewood' } }, 'failed'));
    expectNoPhi(out.text);
  });

  it('ids, codes and paths pass through; the level and name are set', () => {
    const out = new Capture();
    const log = createLogger({ destination: out, level: 'warn', name: 'unit' });
    log.info({ event: 'hidden' }, 'not at warn');
    log.warn({ event: 'ingest.rejected', id: 'msg-1', code: 'E_FHIR_INVALID', path: 'Patient.gender' }, 'rejected');
    const recs = out.records();
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({
      name: 'unit',
      level: 40,
      event: 'ingest.rejected',
      id: 'msg-1',
      code: 'E_FHIR_INVALID',
      path: 'Patient.gender',
      msg: 'rejected',
    });
  });
});

describe('errorFields', () => {
  it('a BrokerError logs code and path only (not its message)', () => {
    const e = new BrokerError('E_FHIR_INVALID', 'Patient.gender: not a code of the required value set', {
      path: 'Patient.gender',
      cause: new Error('Thistlewood'),
    });
    expect(errorFields(e)).toEqual({ code: 'E_FHIR_INVALID', path: 'Patient.gender' });
  });

  it('a foreign error logs its class name, never its message', () => {
    let parseError: unknown;
    try {
      JSON.parse('{"a": Thistlewood}');
    } catch (e) {
      parseError = e;
    }
    expect(String((parseError as Error).message)).toContain('Thistlewood'); // V8 quotes the input: the reason for the rule
    const natsLike = Object.assign(new Error('Thistlewood'), { name: 'NatsError', code: 'TIMEOUT' });
    class CustomFailure extends Error {}
    for (const [err, errorClass] of [
      [parseError, 'SyntaxError'],
      [new TypeError('Cannot read properties of Thistlewood'), 'TypeError'],
      [new CustomFailure('Thistlewood'), 'CustomFailure'],
      ['Thistlewood', 'string'],
      [{ message: 'Thistlewood' }, 'object'],
      [undefined, 'undefined'],
    ] as const) {
      const fields = errorFields(err);
      expect(fields).toEqual({ errorClass });
      expect(JSON.stringify(fields)).not.toContain('Thistlewood');
    }
    expect(errorFields(natsLike)).toEqual({ errorClass: 'Error', natsCode: 'TIMEOUT' });
  });

  it('an object shaped like a coded error logs its code and path only', () => {
    expect(errorFields({ code: 'E_REPLAY', path: 'id', message: 'Thistlewood' })).toEqual({
      code: 'E_REPLAY',
      path: 'id',
    });
    // a code that is not ours is not trusted as one
    expect(
      errorFields(Object.assign(new Error('Thistlewood'), { code: 'ENOENT', path: '/data/Thistlewood.json' })),
    ).toEqual({ errorClass: 'Error' });
  });
});

describe('errorStack', () => {
  it('keeps the frames and drops the message a foreign error may quote input in', () => {
    let parseError: unknown;
    try {
      JSON.parse('{"a": Thistlewood}');
    } catch (e) {
      parseError = e;
    }
    expect((parseError as Error).stack).toContain('Thistlewood');
    const stack = errorStack(parseError);
    expect(stack).toMatch(/^\s+at /);
    expect(stack).not.toContain('Thistlewood');
    expect(stack).not.toContain('SyntaxError');
    const multi = new Error('line one\nThistlewood on line two');
    expect(errorStack(multi)).not.toContain('Thistlewood');
  });

  it('is undefined for what is not an Error', () => {
    expect(errorStack('Thistlewood')).toBeUndefined();
    expect(errorStack({ stack: 'Thistlewood' })).toBeUndefined();
  });
});

describe('errorFields for NATS client errors', () => {
  it('keeps the short protocol code of a NatsError and never its message', () => {
    const err = Object.assign(new Error('TIMEOUT while publishing Thistlewood'), {
      name: 'NatsError',
      code: 'TIMEOUT',
    });
    expect(errorFields(err)).toEqual({ errorClass: 'Error', natsCode: 'TIMEOUT' });
    const odd = Object.assign(new Error('x'), { name: 'NatsError', code: 'not a code: Thistlewood' });
    expect(errorFields(odd)).toEqual({ errorClass: 'Error' });
  });
});
