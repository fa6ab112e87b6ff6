// `phi-broker registry show --patient <ref>`: which services hold data about one patient, in which role
// (source: published it; recipient: received a minimum-necessary projection), which resource types, under
// which purposes of use, since when and how often. The reference is turned into the broker's keyed
// pseudonym (it needs the broker secrets in the data dir) and looked up in KV phi_registry; it is never
// sent anywhere or printed.
import type { Writable } from 'node:stream';
import { existingBrokerSecrets } from '../runtime/broker-secrets.js';
import type { BrokerConfig } from '../config/config.js';
import { canonicalPatientRef } from '../registry/patient-key.js';
import { patientPseudonym } from '../registry/pseudonym.js';
import type { RegistryRecord } from '../registry/record.js';
import { RegistryStore } from '../registry/store.js';
import { connectOperator, loadConfiguredCatalog } from '../runtime/data-dir.js';
import { recordOperatorAction } from '../runtime/operator-audit.js';

/** One row per service and role, as `registry show` prints them. */
export interface HoldingRow {
  readonly service: string;
  readonly role: 'source' | 'recipient';
  readonly types: readonly string[];
  readonly purposes: readonly string[];
  readonly count: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

export function holdingRows(record: RegistryRecord | undefined): HoldingRow[] {
  const rows: HoldingRow[] = [];
  for (const [service, s] of Object.entries(record?.services ?? {})) {
    for (const role of ['source', 'recipient'] as const) {
      const r = s[role];
      if (r !== undefined)
        rows.push({
          service,
          role,
          types: r.types,
          purposes: r.purposes,
          count: r.count,
          firstSeen: r.firstSeen,
          lastSeen: r.lastSeen,
        });
    }
  }
  return rows;
}

export function formatHoldings(pseudonym: string, rows: readonly HoldingRow[]): string {
  if (rows.length === 0) return `patient ${pseudonym}: no service holds data about this patient (nothing recorded)\n`;
  const table = [
    ['SERVICE', 'ROLE', 'TYPES', 'PURPOSES', 'COUNT', 'FIRST SEEN', 'LAST SEEN'],
    ...rows.map((r) => [
      r.service,
      r.role,
      r.types.join(','),
      r.purposes.join(',') || '-',
      String(r.count),
      r.firstSeen,
      r.lastSeen,
    ]),
  ];
  const widths = table[0]?.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length))) ?? [];
  const lines = table.map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '),
  );
  const services = new Set(rows.map((r) => r.service)).size;
  return `patient ${pseudonym}: ${services} service${services === 1 ? '' : 's'}\n${lines.join('\n')}\n`;
}

export async function runRegistryShow(
  config: BrokerConfig,
  patient: string,
  opts: { json: boolean },
  out: Writable = process.stdout,
): Promise<void> {
  const catalog = loadConfiguredCatalog(config);
  const ref = canonicalPatientRef(patient, catalog.patients);
  const pseudonym = patientPseudonym(await existingBrokerSecrets(config), ref);
  const nc = await connectOperator(config, 'phi-broker registry', 'read');
  try {
    const store = await RegistryStore.open(nc, config.replicas);
    const rows = holdingRows(await store.get(pseudonym));
    // Which services hold the patient's data is itself about the patient: recorded before it is shown.
    await recordOperatorAction(config, nc, 'read', {
      action: 'registry-show',
      patientPseudonym: pseudonym,
      details: [['services', String(new Set(rows.map((r) => r.service)).size)]],
    });
    out.write(
      opts.json
        ? `${JSON.stringify({ patient: pseudonym, match: catalog.patients.match, services: rows })}\n`
        : formatHoldings(pseudonym, rows),
    );
  } finally {
    await nc.close();
  }
}
