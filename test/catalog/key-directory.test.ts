// The catalog's `keyDirectory.operatorRootKey` (docs/keys.md): the pinned Ed25519 public key of the key directory,
// compiled into the catalog (and its hash) when valid, refused with the file, path and expectation when not.
import { describe, expect, it } from 'vitest';
import { compileCatalog } from '../../src/catalog/compile.js';
import { catalogFiles } from './fixtures.js';

const X = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo';

describe('keyDirectory in a subjects file', () => {
  it('a valid pin is in the catalog and changes its hash; without one the catalog has none', () => {
    const without = compileCatalog(catalogFiles()).catalog;
    const r = compileCatalog(
      catalogFiles({ 'subjects/keys.yaml': `keyDirectory:\n  operatorRootKey: { kty: OKP, crv: Ed25519, x: ${X} }\n` }),
    );
    expect(r.issues).toEqual([]);
    expect(r.catalog?.keyDirectory).toEqual({ operatorRootKey: { kty: 'OKP', crv: 'Ed25519', x: X } });
    expect(without?.keyDirectory).toBeUndefined();
    expect(r.catalog?.hash).not.toBe(without?.hash);
  });

  it('a key of the wrong curve or length is refused, naming file and path', () => {
    const r = compileCatalog(
      catalogFiles({ 'subjects/keys.yaml': `keyDirectory:\n  operatorRootKey: { kty: OKP, crv: X25519, x: abc }\n` }),
    );
    expect(r.catalog).toBeUndefined();
    expect(r.issues.map((i) => [i.file, i.path])).toEqual([
      ['subjects/keys.yaml', 'keyDirectory.operatorRootKey.crv'],
      ['subjects/keys.yaml', 'keyDirectory.operatorRootKey.x'],
    ]);
    expect(r.issues[1]?.message).toContain('expected a 32-byte Ed25519 public key in base64url');
  });

  it('a second declaration is refused', () => {
    const pin = `keyDirectory:\n  operatorRootKey: { kty: OKP, crv: Ed25519, x: ${X} }\n`;
    const r = compileCatalog(catalogFiles({ 'subjects/keys.yaml': pin, 'subjects/keys2.yaml': pin }));
    expect(r.issues).toHaveLength(1);
    expect(r.issues[0]).toMatchObject({ file: 'subjects/keys2.yaml', path: 'keyDirectory' });
  });
});
