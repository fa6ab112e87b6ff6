// The facts of a record v2 (docs/audit.md "Record v2"): plain JSON values written once per record in a value table.
// `vals` holds every string and number of the record's facts, and every array and object below a fact, each once,
// in first-use order; an entry is a literal string or number, or an array or object in the encoded form. In the
// encoded form a JSON number is an index into `vals` (always lower than the entry that uses it), true, false and
// null are themselves, an array holds encoded values, an object keeps its keys (in order) over encoded values.
// So the message's subject, a profile's element list or a sender is written once however many facts name it.
// Record v3 writes each fact as `[shape, value…]`, `shape` the index of the array of its key names (`shaped`), and a
// string with a long path prefix (a profile URL) as the entry `[prefix, "rest"]`, so a prefix is written once.

/** A JSON value of a fact: what JSON.stringify keeps (undefined members are left out, as JSON does). */
type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json | undefined };

/** The shortest prefix a v3 table writes once for the strings that share it. */
const PREFIX_MIN = 16;

/** Printable ASCII but `"` and `\`: JSON writes it as it is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function stringText(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** Builds one record's table while its facts are encoded. */
export class FactTable {
  private readonly vals: string[] = [];
  private readonly strings = new Map<string, number>();
  private readonly numbers = new Map<number, number>();
  private readonly composites = new Map<string, number>();
  /** Objects and arrays already encoded, by identity (the facts of one message share their subject, actors, lists). */
  private readonly seen = new Map<object, number>();
  /** Fact shapes already in the table, by their key names' JSON. */
  private readonly shapes = new Map<string, number>();

  /** `prefixes`: strings with a path prefix of PREFIX_MIN or more characters are written as `[prefix, "rest"]` (v3). */
  constructor(private readonly prefixes = false) {}

  /** The encoded text of a fact (an object, kept inline); its members go into the table. */
  fact(fact: object): string {
    return this.composite(fact as Json);
  }

  /**
   * A fact as `[shape, value…]` (record v3): `shape` indexes the array of its key names in the table, so facts of one
   * shape write their keys once per record. `omit` is a key left out (one the reader derives).
   */
  shaped(fact: object, omit?: string): string {
    const keys: string[] = [];
    let values = '';
    for (const key in fact) {
      const v = (fact as Record<string, Json | undefined>)[key];
      if (v === undefined || key === omit) continue;
      keys.push(key);
      values += `,${this.member(v)}`;
    }
    const name = JSON.stringify(keys);
    let shape = this.shapes.get(name);
    if (shape === undefined) {
      shape = this.ref(keys);
      this.shapes.set(name, shape);
    }
    return `[${shape}${values}]`;
  }

  /** `[entry,…]`: the table's JSON text. */
  text(): string {
    return `[${this.vals.join(',')}]`;
  }

  private ref(value: Json): number {
    if (typeof value === 'string') {
      const known = this.strings.get(value);
      if (known !== undefined) return known;
      // Up to and including the last '/': a profile URL's base, shared by every profile of the catalog.
      const cut = this.prefixes ? value.lastIndexOf('/') + 1 : 0;
      const text =
        cut >= PREFIX_MIN && cut < value.length
          ? `[${this.ref(value.slice(0, cut))},${stringText(value.slice(cut))}]`
          : stringText(value);
      return this.scalar(this.strings, value, text);
    }
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new TypeError('an audit fact holds a number JSON cannot write');
      return this.scalar(this.numbers, value, JSON.stringify(value));
    }
    const obj = value as object;
    const known = this.seen.get(obj);
    if (known !== undefined) return known;
    const text = this.composite(value);
    let i = this.composites.get(text);
    if (i === undefined) {
      i = this.vals.push(text) - 1;
      this.composites.set(text, i);
    }
    this.seen.set(obj, i);
    return i;
  }

  private scalar<K>(map: Map<K, number>, key: K, text: string): number {
    let i = map.get(key);
    if (i === undefined) {
      i = this.vals.push(text) - 1;
      map.set(key, i);
    }
    return i;
  }

  private member(value: Json | undefined): string {
    if (value === undefined) return 'null'; // in an array, as JSON.stringify writes it
    if (value === null || typeof value === 'boolean') return String(value);
    return String(this.ref(value));
  }

  private composite(value: Json): string {
    if (Array.isArray(value)) {
      let out = '[';
      for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + this.member((value as Json[])[i] as Json);
      return `${out}]`;
    }
    let out = '{';
    let first = true;
    for (const key in value as object) {
      const v = (value as Record<string, Json | undefined>)[key];
      if (v === undefined) continue;
      out += `${first ? '' : ','}${stringText(key)}:${this.member(v)}`;
      first = false;
    }
    return `${out}}`;
  }
}

/** Reads a record's table back; undefined when an entry is not in the encoded form. */
export class FactReader {
  private readonly decoded: unknown[] = [];

  private constructor(
    private readonly vals: readonly unknown[],
    private readonly prefixes: boolean,
  ) {}

  /** `prefixes`: a v3 table, whose entries may be `[prefix, "rest"]` strings. */
  static of(vals: unknown, prefixes = false): FactReader | undefined {
    if (!Array.isArray(vals)) return undefined;
    const reader = new FactReader(vals, prefixes);
    // Entries refer only to earlier ones, so one pass in order decodes (and checks) them all.
    for (let i = 0; i < vals.length; i++) {
      const v = reader.decode(vals[i], i, true);
      if (v === INVALID) return undefined;
      reader.decoded.push(v);
    }
    return reader;
  }

  /** An encoded fact; undefined when it is not an object in the encoded form. */
  fact(encoded: unknown): Record<string, unknown> | undefined {
    if (typeof encoded !== 'object' || encoded === null || Array.isArray(encoded)) return undefined;
    const v = this.decode(encoded, this.vals.length, false);
    return v === INVALID ? undefined : (v as Record<string, unknown>);
  }

  /**
   * A fact as `[shape, value…]` (record v3): the object of the shape's key names over the decoded values; undefined
   * when the shape is not an entry holding distinct key names, one per value.
   */
  shaped(encoded: unknown): Record<string, unknown> | undefined {
    if (!Array.isArray(encoded) || encoded.length === 0) return undefined;
    const [s, ...members] = encoded as unknown[];
    if (!Number.isSafeInteger(s) || (s as number) < 0 || (s as number) >= this.vals.length) return undefined;
    const keys = this.decoded[s as number];
    if (!Array.isArray(keys) || keys.length !== members.length) return undefined;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const key: unknown = keys[i];
      if (typeof key !== 'string' || key === '__proto__' || Object.hasOwn(out, key)) return undefined;
      const v = this.decode(members[i], this.vals.length, false);
      if (v === INVALID) return undefined;
      out[key] = v;
    }
    return out;
  }

  private decode(x: unknown, below: number, entry: boolean): unknown {
    if (typeof x === 'number') {
      if (entry) return x; // a number entry is itself
      return Number.isSafeInteger(x) && x >= 0 && x < below ? this.decoded[x] : INVALID;
    }
    if (typeof x === 'string') return entry ? x : INVALID;
    if (x === null || typeof x === 'boolean') return x;
    if (entry && this.prefixes && Array.isArray(x) && x.length === 2 && typeof x[1] === 'string') {
      const prefix = this.decode(x[0], below, false);
      return typeof prefix === 'string' ? prefix + x[1] : INVALID;
    }
    if (Array.isArray(x)) {
      const out: unknown[] = [];
      for (const e of x) {
        const v = this.decode(e, below, false);
        if (v === INVALID) return INVALID;
        out.push(v);
      }
      return Object.freeze(out);
    }
    const out: Record<string, unknown> = {};
    for (const [k, e] of Object.entries(x as Record<string, unknown>)) {
      if (k === '__proto__') return INVALID;
      const v = this.decode(e, below, false);
      if (v === INVALID) return INVALID;
      out[k] = v;
    }
    return Object.freeze(out);
  }
}

const INVALID = Symbol('invalid');
