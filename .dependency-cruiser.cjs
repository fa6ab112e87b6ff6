// The architecture, as import rules that `npm test` enforces (dependency-cruiser; picture in docs/architecture.md).
// Each folder of src/ lists the folders it may import; anything else is an error. The lists form a DAG, bottom up:
// wire → pure core → services → NATS edge → broker / SDK → runtime → CLI (test/architecture.test.ts checks it).

/** Folder → the folders of src/ it may import (besides itself). */
const MAY_IMPORT = {
  // Bottom: names, ids, the receipt format and error codes shared by broker, SDK and gateway. Pure.
  wire: [],
  // Pure core: no NATS, no file or network I/O.
  crypto: ['wire'],
  fhir: ['wire'],
  config: ['wire'],
  log: ['wire'],
  tls: ['wire'],
  catalog: ['wire', 'fhir'],
  envelope: ['wire', 'crypto', 'fhir'],
  projection: ['wire', 'fhir', 'catalog'],
  'access/protocol': ['wire', 'crypto', 'fhir', 'catalog', 'envelope'],
  // The NATS edge: connections, stream setup, the embedded server, permissions.
  // crypto: the key directory's entries are verified where they are read (key-directory.ts).
  nats: ['wire', 'crypto', 'config', 'log', 'tls', 'catalog'],
  // Services: patient rights and audit, over NATS.
  audit: ['wire', 'crypto', 'config', 'log', 'nats'],
  registry: ['wire', 'crypto', 'fhir', 'catalog', 'log', 'nats'],
  consent: ['wire', 'crypto', 'fhir', 'catalog', 'log', 'nats', 'registry'],
  disclosures: ['wire', 'fhir', 'catalog', 'projection', 'log', 'nats', 'consent', 'registry'],
  'access/desk': [
    'wire',
    'crypto',
    'fhir',
    'catalog',
    'envelope',
    'projection',
    'log',
    'nats',
    'audit',
    'registry',
    'access/protocol',
  ],
  // The two ends of a message: the broker process, and what services import. Neither imports the other.
  broker: [
    'wire',
    'crypto',
    'fhir',
    'catalog',
    'config',
    'log',
    'envelope',
    'projection',
    'nats',
    'audit',
    'consent',
    'disclosures',
    'registry',
  ],
  sdk: ['wire', 'crypto', 'fhir', 'catalog', 'config', 'log', 'envelope', 'nats', 'access/protocol'],
  // The partner HTTPS edge (fastify, jose): an edge like the broker, never importing it.
  gateway: ['wire', 'crypto', 'fhir', 'catalog', 'config', 'log', 'envelope', 'projection', 'nats', 'sdk', 'audit'],
  // Example catalog services built on the SDK (`phi-broker serve-example`), for trying the workflow by hand.
  examples: ['wire', 'fhir', 'catalog', 'log', 'registry', 'sdk'],
  // Start-up: data dir, key files, embedded nats-server, provisioning, a whole stack in one process.
  runtime: [
    'wire',
    'crypto',
    'fhir',
    'catalog',
    'config',
    'log',
    'tls',
    'envelope',
    'nats',
    'audit',
    'registry',
    'consent',
    'access/desk',
    'broker',
    'sdk',
    'gateway',
  ],
  // Commands only.
  cli: [
    'wire',
    'crypto',
    'fhir',
    'catalog',
    'config',
    'log',
    'tls',
    'envelope',
    'projection',
    'nats',
    'audit',
    'registry',
    'consent',
    'disclosures',
    'access/protocol',
    'access/desk',
    'broker',
    'sdk',
    'gateway',
    'runtime',
    'examples',
  ],
};

/** Modules that must stay pure: decisions over data, no NATS client and no file, process or network I/O. */
const PURE = ['wire', 'crypto', 'fhir', 'catalog', 'envelope', 'projection', 'access/protocol'];
const PURE_FILES = ['src/broker/pipeline\\.ts', 'src/consent/decide\\.ts'];
/** Bundled R4 tables (element index, patient compartment), read once and lazily from the package itself. */
const BUNDLED_DATA_READERS = ['src/fhir/elements\\.ts', 'src/fhir/patient-ref\\.ts'];
const IO_MODULES = '^(node:)?(fs|fs/promises|child_process|net|tls|http|https|dgram|os|worker_threads)$';

const folder = (name) => `^src/${name}/`;
const alt = (names) => `(${names.map((n) => n.replace('/', '\\/')).join('|')})`;

const layerRules = Object.entries(MAY_IMPORT).map(([name, allowed]) => ({
  name: `layer-${name.replace('/', '-')}`,
  comment: `src/${name}/ may import only ${allowed.length ? allowed.map((a) => `src/${a}/`).join(', ') : 'itself'}`,
  severity: 'error',
  from: { path: folder(name) },
  to: { path: '^src/', pathNot: [`^src/${alt([name, ...allowed])}/`] },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'pure-core-no-io',
      comment: 'the pure core imports no NATS client and does no file, process or network I/O',
      severity: 'error',
      from: { path: [`^src/${alt(PURE)}/`, ...PURE_FILES.map((f) => `^${f}$`)], pathNot: BUNDLED_DATA_READERS },
      to: { path: [IO_MODULES, '^node_modules/nats/'] },
    },
    {
      name: 'sdk-entry-only-public',
      comment: 'src/index.ts (the SDK package entry) exports the SDK, never the broker, CLI or services',
      severity: 'error',
      from: { path: '^src/index\\.ts$' },
      to: { path: `^src/${alt(['broker', 'cli', 'audit', 'registry', 'consent', 'disclosures', 'access/desk'])}/` },
    },
    {
      name: 'no-circular',
      comment: 'no module imports itself through others',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-to-dev-deps',
      comment: 'what ships (src/) uses only dependencies, never devDependencies',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'src-not-to-tests-or-bench',
      comment: 'src/ never imports test/ or bench/',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};

// For test/architecture.test.ts; not enumerable, so dependency-cruiser's config schema does not see it.
Object.defineProperty(module.exports, 'MAY_IMPORT', { value: MAY_IMPORT, enumerable: false });
