// Strict, number-exact JSON (src/wire/json.ts; docs/wire-format.md "Numbers and duplicate members"): lexemes kept
// through parse → stringify, duplicate members refused with their path and never their value, and the same rules
// in the two places that read a resource as text (the broker's raw-mode parse) and a number leaf (FHIR validation).
import { describe, expect, it } from 'vitest';
import { formatPath } from '../../src/fhir/json-path.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { BrokerError } from '../../src/wire/errors.js';
import { JsonNumber, parseJsonText, parseResourceJson, stringifyJson } from '../../src/wire/json.js';

const LEXEMES = ['6.30', '1.0', '-0', '12345678901234567890', '1.0e2', '0.000', '-1.5E-7', '2E+3'];

function thrown(f: () => unknown): BrokerError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError);
    return e as BrokerError;
  }
  throw new Error('expected a BrokerError');
}

describe('number lexemes', () => {
  it.each(LEXEMES)('%s parses to a JsonNumber and stringifies back to the same text', (lexeme) => {
    const text = `{"resourceType":"Observation","valueQuantity":{"value":${lexeme}},"x":[${lexeme},true,null,"s"]}`;
    const r = parseJsonText(text);
    expect('value' in r).toBe(true);
    if (!('value' in r)) return;
    const v = (r.value as { valueQuantity: { value: unknown } }).valueQuantity.value;
    expect(v).toBeInstanceOf(JsonNumber);
    expect((v as JsonNumber).value).toBe(lexeme);
    expect(stringifyJson(r.value)).toBe(text);
  });

  it('JSON.stringify of a JsonNumber is the nearest double where the runtime lacks JSON.rawJSON, never an object', () => {
    const s = JSON.stringify({ v: new JsonNumber('6.30') });
    expect(['{"v":6.3}', '{"v":6.30}']).toContain(s);
  });

  it('text that is not JSON is a syntax fault, with nothing of the input kept', () => {
    expect(parseJsonText('{"a":Zebulon}')).toStrictEqual({ fault: { kind: 'syntax' } });
    expect(parseJsonText('{"a":01}')).toStrictEqual({ fault: { kind: 'syntax' } });
  });
});

describe('duplicate member names (RFC 7493 §2.3)', () => {
  it.each([
    ['{"resourceType":"Patient","gender":"male","gender":"female"}', 'Patient.gender'],
    ['{"resourceType":"Patient","name":[{"family":"Quillfeather","family":"Ottoline"}]}', 'Patient.name[0].family'],
    ['{"resourceType":"Observation","valueQuantity":{"value":6.30,"value":6.3}}', 'Observation.valueQuantity.value'],
    ['{"name":[{"given":["Zebulon"]}],"name":[]}', 'Resource.name'],
    ['{"resourceType":"Patient","Zebulon Quillfeather":1,"Zebulon Quillfeather":2}', 'Patient.[?]'],
  ])('%s → E_JSON_MALFORMED at %s, naming no value', (text, path) => {
    const err = thrown(() => parseResourceJson(text, formatPath));
    expect({ code: err.code, path: err.path }).toStrictEqual({ code: 'E_JSON_MALFORMED', path });
    expect(err.message).toBe(`${path}: duplicate member name (RFC 7493 §2.3)`);
    for (const v of ['male', 'female', 'Quillfeather', 'Ottoline', 'Zebulon', '6.3'])
      expect(err.message).not.toContain(v);
  });

  it('a repeat with an equal value is one member (every reader reads the same)', () => {
    const r = parseJsonText('{"a":"x","a":"x"}');
    expect('value' in r && stringifyJson(r.value)).toBe('{"a":"x"}');
  });
});

describe('FHIR validation reads a number by its lexeme', () => {
  function obs(value: string, element = 'valueQuantity'): unknown {
    const r = parseJsonText(
      `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"t"},` +
        (element === 'valueQuantity' ? `"valueQuantity":{"value":${value}}}` : `"${element}":${value}}`),
    );
    if (!('value' in r)) throw new Error('fixture is JSON');
    return r.value;
  }

  it.each(LEXEMES)('decimal %s is accepted and left as it was written', (lexeme) => {
    const resource = validateResource(obs(lexeme), DEFAULT_VALIDATION_LIMITS);
    expect(stringifyJson(resource)).toContain(`"value":${lexeme}}`);
  });

  it.each([
    ['valueInteger', '1.0'],
    ['valueInteger', '1e2'],
    ['valueInteger', '2147483648'],
    ['valueInteger', '-2147483649'],
    ['valueInteger', '12345678901234567890'],
  ])('%s %s is refused: E_FHIR_INVALID at the element (the fixed message names no value)', (element, lexeme) => {
    const err = thrown(() => validateResource(obs(lexeme, element), DEFAULT_VALIDATION_LIMITS));
    expect({ code: err.code, path: err.path }).toStrictEqual({
      code: 'E_FHIR_INVALID',
      path: `Observation.${element}`,
    });
    expect(err.message).toBe(`Observation.${element}: not a FHIR integer (digits only, -2147483648 to 2147483647)`);
  });

  it('integer bounds and -0 are accepted for integer; positiveInt refuses 0 and takes 1', () => {
    for (const ok of ['2147483647', '-2147483648', '-0', '0'])
      expect(() => validateResource(obs(ok, 'valueInteger'), DEFAULT_VALIDATION_LIMITS)).not.toThrow();
    const patient = (rank: string): unknown => {
      const r = parseJsonText(`{"resourceType":"Patient","id":"p1","telecom":[{"system":"phone","rank":${rank}}]}`);
      return 'value' in r ? r.value : undefined;
    };
    const err = thrown(() => validateResource(patient('0'), DEFAULT_VALIDATION_LIMITS));
    expect({ code: err.code, path: err.path }).toStrictEqual({
      code: 'E_FHIR_INVALID',
      path: 'Patient.telecom[0].rank',
    });
    expect(() => validateResource(patient('1'), DEFAULT_VALIDATION_LIMITS)).not.toThrow();
  });
});
