// The nats-server 2.9 security-line parser (src/nats/server-log.ts) on lines a real nats-server 2.9.10 wrote
// (fixtures/nats-server-2.9.10-security.log: a service publishing and subscribing where its permissions deny, a
// client without a certificate, a certificate of the right CA for no configured user, one of another CA, a
// plaintext client), and on constructed lines where a client chose its name to look like the server's text.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSecurityLogLine, UNRECOGNISED } from '../../src/nats/server-log.js';

const lines = readFileSync(new URL('fixtures/nats-server-2.9.10-security.log', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l !== '');

describe('parseSecurityLogLine on nats-server 2.9.10 lines', () => {
  it('reads each refused client: kind, address without port, identity, subject, TLS refusal', () => {
    expect(lines.map(parseSecurityLogLine)).toEqual([
      undefined, // Listening for client connections
      undefined, // TLS required
      undefined, // Server is ready
      {
        kind: 'publish-violation',
        address: '127.0.0.1',
        identity: 'notification',
        subject: 'phi.ingest.registration.Patient',
      },
      { kind: 'publish-violation', address: '127.0.0.1', identity: 'notification', subject: 'Zephyrine.Oakhollow' },
      {
        kind: 'subscription-violation',
        address: '127.0.0.1',
        identity: 'notification',
        subject: 'phi.deliver.registration.Patient',
      },
      { kind: 'tls-handshake', address: '127.0.0.1', refusal: 'no-certificate' },
      { kind: 'authentication', address: '127.0.0.1' },
      { kind: 'tls-handshake', address: '127.0.0.1', refusal: 'unknown-authority' },
      { kind: 'tls-handshake', address: '127.0.0.1', refusal: 'handshake-failed' },
    ]);
  });
});

describe('parseSecurityLogLine on constructed lines', () => {
  const at = '[1] 2026/12/07 01:33:16.450447 [ERR] ';
  it('reads only the server-formatted tail: a client name imitating it changes nothing', () => {
    const spoof = `${at}10.0.0.7:4222 - cid:9 - "x - Publish Violation - User \\"CN=broker,OU=broker,O=phi-broker\\", Subject \\"phi.audit.a\\"" - Publish Violation - User "CN=lab,OU=service,O=phi-broker", Subject "phi.ingest.registration.Patient"`;
    expect(parseSecurityLogLine(spoof)).toEqual({
      kind: 'publish-violation',
      address: '10.0.0.7',
      identity: 'lab',
      subject: 'phi.ingest.registration.Patient',
    });
  });

  it('keeps a user name only when it is a phi-broker identity, and reads a queue subscription and IPv6', () => {
    expect(
      parseSecurityLogLine(
        `${at}[::1]:5000 - cid:3 - "n" - Subscription Violation - User "CN=Jane Doe,O=x", Subject "phi.>", Queue: "q", SID 4`,
      ),
    ).toEqual({ kind: 'subscription-violation', address: '::1', unknownUser: true, subject: 'phi.>' });
    expect(
      parseSecurityLogLine(
        `${at}10.0.0.8:1 - cid:4 - Authorization Error - User "CN=operator,OU=operator,O=phi-broker"`,
      ),
    ).toEqual({
      kind: 'authentication',
      address: '10.0.0.8',
      identity: 'operator',
    });
  });

  it('maps TLS texts to a closed set and never returns the text', () => {
    const tls = (text: string): unknown =>
      parseSecurityLogLine(`${at}10.0.0.9:1 - cid:5 - TLS handshake error: ${text}`);
    expect(
      tls('tls: failed to verify client certificate: x509: certificate has expired or is not yet valid: current time'),
    ).toEqual({
      kind: 'tls-handshake',
      address: '10.0.0.9',
      refusal: 'expired-or-not-yet-valid',
    });
    expect(
      tls('tls: failed to verify client certificate: x509: certificate specifies an incompatible key usage'),
    ).toMatchObject({
      refusal: 'certificate-rejected',
    });
    expect(tls('tls: first record does not look like a TLS handshake')).toMatchObject({ refusal: 'handshake-failed' });
  });

  it('reports a line naming a security event in an unknown shape as unrecognised, and ignores the rest', () => {
    expect(parseSecurityLogLine('Publish Violation somewhere without the prefix')).toBe(UNRECOGNISED);
    expect(parseSecurityLogLine(`${at}10.0.0.1:1 - cid:1 - "n" - Publish Violation - something new`)).toBe(
      UNRECOGNISED,
    );
    expect(parseSecurityLogLine(`${at}not-an-address - cid:1 - TLS handshake error: EOF`)).toBe(UNRECOGNISED);
    expect(parseSecurityLogLine(`${at}10.0.0.1:1 - cid:1 - Client connection closed: Client Closed`)).toBeUndefined();
  });
});
