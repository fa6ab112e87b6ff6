// nats-server 2.9's log lines about refused clients (permission violations, TLS and authentication errors), parsed;
// only the server-formatted tail is read, since the client chooses its name. Pure (docs/audit.md, "Security incidents").
import { SERVICE_ID_PATTERN } from '../wire/ids.js';

export const SECURITY_LOG_KINDS = [
  'publish-violation',
  'subscription-violation',
  'tls-handshake',
  'authentication',
] as const;
export type SecurityLogKind = (typeof SECURITY_LOG_KINDS)[number];

/** Why a TLS handshake was refused, as a closed set (the server's text can quote names from the client's certificate). */
export const TLS_REFUSALS = [
  'no-certificate',
  'unknown-authority',
  'expired-or-not-yet-valid',
  'certificate-rejected',
  'handshake-failed',
] as const;
export type TlsRefusal = (typeof TLS_REFUSALS)[number];

export interface SecurityLogEvent {
  readonly kind: SecurityLogKind;
  /** The client's IP address (without its port), as nats-server logged it. */
  readonly address: string;
  /** The phi-broker identity whose certificate the server mapped the client to (`CN=<id>,OU=<kind>,O=phi-broker`). */
  readonly identity?: string;
  /** The logged user name was not a phi-broker identity (it is not kept). */
  readonly unknownUser?: true;
  /** The subject or subscription pattern refused, as logged: unchecked, possibly anything the client sent. */
  readonly subject?: string;
  readonly refusal?: TlsRefusal;
}

/** A line that names a security event but is not in a format this parser knows: counted, never copied. */
export const UNRECOGNISED = 'unrecognised';

const PREFIX = /^\[\d+\] \d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\.\d{6} \[(?:ERR|WRN|INF)\] (\S+) - cid:\d+ - (.*)$/;
const VIOLATION =
  / - (Publish|Subscription) Violation - User "((?:[^"\\]|\\.)*)", Subject "([^"\s]*)"(?:, Queue: "[^"\s]*")?(?:, SID \S+)?$/;
const AUTHENTICATION = /(?:^|" - )(?:authentication error|Authorization Error)(?: - User "((?:[^"\\]|\\.)*)")?$/;
const TLS = /^TLS handshake error: (.*)$/;
const MARKERS = /Violation|TLS handshake error|authentication error|Authorization Error/;
const IDENTITY = /^CN=([a-z][a-z0-9-]{0,62}),OU=(service|broker|admin|operator|auditor),O=phi-broker$/;

/** The security event a log line records; UNRECOGNISED for one in an unknown format; undefined for any other line. */
export function parseSecurityLogLine(line: string): SecurityLogEvent | typeof UNRECOGNISED | undefined {
  if (!MARKERS.test(line)) return undefined;
  const m = PREFIX.exec(line);
  if (m === null) return UNRECOGNISED;
  const address = hostOf(m[1] as string);
  const rest = m[2] as string;
  if (address === undefined) return UNRECOGNISED;
  const tls = TLS.exec(rest);
  if (tls !== null) return { kind: 'tls-handshake', address, refusal: tlsRefusal(tls[1] as string) };
  const v = VIOLATION.exec(rest);
  if (v !== null) {
    return {
      kind: v[1] === 'Publish' ? 'publish-violation' : 'subscription-violation',
      address,
      ...who(v[2] as string),
      subject: v[3] as string,
    };
  }
  const a = AUTHENTICATION.exec(rest);
  if (a !== null) return { kind: 'authentication', address, ...who(a[1] ?? '') };
  return UNRECOGNISED;
}

function who(user: string): { identity?: string; unknownUser?: true } {
  if (user === '') return {};
  const m = IDENTITY.exec(user);
  return m !== null && SERVICE_ID_PATTERN.test(m[1] as string) ? { identity: m[1] as string } : { unknownUser: true };
}

/** `1.2.3.4:5678` or `[::1]:5678` → the address alone; undefined when it is neither. */
function hostOf(hostPort: string): string | undefined {
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:\d+$/.exec(hostPort);
  if (v6 !== null) return v6[1];
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hostPort);
  return v4 === null ? undefined : v4[1];
}

/** Go's crypto/tls and crypto/x509 error texts, reduced to a closed set. */
function tlsRefusal(text: string): TlsRefusal {
  if (text.includes("didn't provide a certificate")) return 'no-certificate';
  if (text.includes('certificate signed by unknown authority')) return 'unknown-authority';
  if (text.includes('has expired or is not yet valid')) return 'expired-or-not-yet-valid';
  if (/certificate|x509/.test(text)) return 'certificate-rejected';
  return 'handshake-failed';
}
