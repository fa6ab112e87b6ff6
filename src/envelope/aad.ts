// Associated data of the envelope's AEADs (XChaCha20-Poly1305, src/crypto/aead.ts). Binding each ciphertext to its
// message, element path and key is what makes moving, swapping or replaying a ciphertext fail (DESIGN.md property 3).
//   leaf:  UTF-8("v1|" + id + "|" + path + "|" + dk)
//   wrap:  UTF-8("v1-wrap|" + id + "|" + to + "|" + kek + "|" + dk)
// id, dk, service ids and kids never contain "|" (their patterns forbid it), so each field is recoverable.
// Element paths are concrete JSON paths rooted at the resource type: `Patient.name[0].given[1]`; an object key that is
// not an identifier ([A-Za-z_$][A-Za-z0-9_$-]*) is written as a JSON string in brackets: `Patient["a.b"]`.

const SIMPLE_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

export function childPath(parent: string, key: string): string {
  return SIMPLE_KEY.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

export function indexPath(parent: string, index: number): string {
  return `${parent}[${index}]`;
}

export function leafAad(id: string, path: string, dk: string): Uint8Array {
  return Buffer.from(`v1|${id}|${path}|${dk}`, 'utf8');
}

export function wrapAad(id: string, to: string, kek: string, dk: string): Uint8Array {
  return Buffer.from(`v1-wrap|${id}|${to}|${kek}|${dk}`, 'utf8');
}
