// The key directory on NATS (docs/keys.md): KV bucket `phi_keys`, one key per party, each value a JWS signed by
// the operator root key (src/crypto/key-directory.ts). Readers verify every entry against the pinned root key and
// watch the bucket (an ordered push consumer, NATS ADR-8), so a rotation or revocation reaches them without a
// restart. A refused entry (bad signature, rollback, deletion) leaves the party's last good entry in force.
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import {
  applyEntry,
  currentSigKid,
  signEntry,
  verifyEntry,
  type AppliedEntry,
  type DirectoryEntry,
  type OperatorRootKey,
} from '../crypto/key-directory.js';
import type { Keyring } from '../crypto/keyring.js';
import type { ServiceKeys } from '../crypto/keypairs.js';
import { BrokerError } from '../wire/errors.js';
import { KV_BUCKETS } from '../wire/names.js';
import { errorFields, type Logger } from '../log/log.js';
import { bucketPlacement, SINGLE_NODE_REPLICAS, type Replicas } from './setup.js';

/** Revisions kept per party: the directory's own history of rotations and revocations. */
export const KEY_DIRECTORY_HISTORY = 64;
/** One entry is a few KiB even with dozens of key versions. */
const MAX_ENTRY_BYTES = 256 * 1024;

/** Creates (provisioning) or binds the bucket. `replicas` applies only when it is created here. */
export async function ensureKeyDirectoryBucket(
  nc: NatsConnection,
  replicas: Replicas = SINGLE_NODE_REPLICAS,
): Promise<KV> {
  return nc.jetstream().views.kv(KV_BUCKETS.keys, {
    history: KEY_DIRECTORY_HISTORY,
    maxValueSize: MAX_ENTRY_BYTES,
    max_bytes: 64 * 1024 * 1024,
    ...bucketPlacement(replicas),
  });
}

/** Binds the provisioned bucket without creating or changing it (readers). */
export async function openKeyDirectoryBucket(nc: NatsConnection): Promise<KV> {
  return nc.jetstream().views.kv(KV_BUCKETS.keys, { bindOnly: true });
}

export interface StoredEntry {
  readonly entry: DirectoryEntry;
  readonly revision: number;
}

/** Every party's current entry, verified; a refused entry is an error (operators see it at once). */
export async function readDirectory(kv: KV, root: OperatorRootKey): Promise<Map<string, StoredEntry>> {
  const out = new Map<string, StoredEntry>();
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  for (const party of keys.sort()) {
    const e = await kv.get(party);
    if (e === null || e.operation !== 'PUT') continue;
    out.set(party, { entry: verifyEntry(party, e.string(), root), revision: e.revision });
  }
  return out;
}

/**
 * Signs and stores an entry: created when `revision` is 0, else a compare-and-set on that revision (NATS ADR-8), so
 * two operators editing one party at once cannot overwrite each other. Returns the new revision.
 */
export async function putEntry(
  kv: KV,
  root: OperatorRootKey,
  entry: DirectoryEntry,
  revision: number,
): Promise<number> {
  const jws = await signEntry(entry, root);
  return revision === 0 ? kv.create(entry.party, jws) : kv.update(entry.party, jws, revision);
}

export interface KeyDirectoryHandlers {
  /** A verified entry newer than the one in force (in KV order; synchronous). */
  applied(entry: DirectoryEntry, initial: boolean): void;
  /** A refused entry: the previous one stays in force. */
  refused(party: string, error: BrokerError, initial: boolean): void;
}

/** A running watch of the directory. Start resolves once every stored entry has been applied. */
export class KeyDirectoryWatch {
  readonly #seq = new Map<string, number>();
  /** The KV revision applied per party: a refresh may run ahead of the watch, which then skips what it passed. */
  readonly #revision = new Map<string, number>();
  #iterator: QueuedIterator<KvEntry> | undefined;
  #stopping = false;

  private constructor(
    private readonly kv: KV,
    private readonly root: OperatorRootKey,
    private readonly handlers: KeyDirectoryHandlers,
    private readonly logger: Logger,
  ) {}

  static async start(
    kv: KV,
    root: OperatorRootKey,
    handlers: KeyDirectoryHandlers,
    logger: Logger,
  ): Promise<KeyDirectoryWatch> {
    const w = new KeyDirectoryWatch(kv, root, handlers, logger);
    await w.#watch();
    return w;
  }

  /**
   * Reads one party's entry now and applies it if newer than the one in force (as the watch would a moment later).
   * Resolves true when it applied something.
   */
  async refresh(party: string): Promise<boolean> {
    const e = await this.kv.get(party);
    if (e === null) return false;
    const before = this.#seq.get(party);
    this.#apply(e, false);
    return this.#seq.get(party) !== before;
  }

  /** The seq in force per party. */
  seqOf(party: string): number | undefined {
    return this.#seq.get(party);
  }

  stop(): void {
    this.#stopping = true;
    this.#iterator?.stop();
  }

  async #watch(): Promise<void> {
    let loaded!: () => void;
    const initialized = new Promise<void>((resolve) => (loaded = resolve));
    let ready = false;
    const iterator = await this.kv.watch({
      initializedFn: () => {
        ready = true;
        this.logger.info({ event: 'keys.directory.loaded', parties: this.#seq.size }, 'key directory loaded');
        loaded();
      },
    });
    this.#iterator = iterator;
    void (async () => {
      for await (const e of iterator) this.#apply(e, !ready);
    })().then(
      () => this.#ended(),
      (err: unknown) => this.#ended(err),
    );
    await initialized;
  }

  #ended(err?: unknown): void {
    if (this.#stopping) return;
    this.logger.error(
      { event: 'keys.directory.watch_ended', ...(err === undefined ? {} : errorFields(err)) },
      'key directory watch ended; restarting',
    );
    this.#watch().catch((e: unknown) =>
      this.logger.error(
        { event: 'keys.directory.watch_failed', ...errorFields(e) },
        'key directory watch could not restart; keys are frozen at the last entries',
      ),
    );
  }

  #apply(e: KvEntry, initial: boolean): void {
    const party = e.key;
    if (e.revision <= (this.#revision.get(party) ?? 0)) return;
    this.#revision.set(party, e.revision);
    try {
      if (e.operation !== 'PUT')
        throw new BrokerError(
          'E_KEY_DIRECTORY_INVALID',
          `key directory entry ${party}: deleted; kept the last good entry`,
          {
            path: party,
          },
        );
      const entry = verifyEntry(party, e.string(), this.root);
      const inForce = this.#seq.get(party);
      if (inForce === entry.seq) return; // already applied (a refresh, then the watch)
      if (inForce !== undefined && entry.seq < inForce)
        throw new BrokerError(
          'E_KEY_DIRECTORY_INVALID',
          `key directory entry ${party}: seq ${entry.seq} is not above ${inForce} in force (a rollback)`,
          { path: party },
        );
      this.#seq.set(party, entry.seq);
      this.logger.info(
        { event: 'keys.directory.applied', party, seq: entry.seq, revision: e.revision },
        'key directory entry applied',
      );
      this.handlers.applied(entry, initial);
    } catch (err) {
      const error =
        err instanceof BrokerError
          ? err
          : new BrokerError('E_KEY_DIRECTORY_INVALID', `key directory entry ${party}: could not be applied`, {
              path: party,
              cause: err,
            });
      this.logger.error(
        { event: 'keys.directory.refused', party, revision: e.revision, ...errorFields(error) },
        'key directory entry refused; the previous keys stay in force',
      );
      this.handlers.refused(party, error, initial);
    }
  }
}

export interface KeyringSyncOptions {
  readonly nc: NatsConnection;
  readonly root: OperatorRootKey;
  readonly keyring: Keyring;
  readonly logger: Logger;
  /** The holder's own key versions, read again when its entry names a current key it does not hold (rotation). */
  readonly reloadOwnKeys?: () => readonly ServiceKeys[] | Promise<readonly ServiceKeys[]>;
  /** After each applied entry (e.g. to alert on `newlyRevoked`). */
  readonly onApplied?: (entry: DirectoryEntry, applied: AppliedEntry, initial: boolean) => void;
  readonly onRefused?: (party: string, error: BrokerError, initial: boolean) => void;
}

/**
 * Keeps a keyring in step with the directory: every party's public keys and status, and the holder's own new
 * version loaded through `reloadOwnKeys` when a rotation names it. Resolves once the stored entries are applied.
 */
export async function syncKeyring(opts: KeyringSyncOptions): Promise<KeyDirectoryWatch> {
  const kv = await openKeyDirectoryBucket(opts.nc);
  const { keyring, logger } = opts;
  return KeyDirectoryWatch.start(
    kv,
    opts.root,
    {
      applied(entry, initial) {
        const applied = applyEntry(keyring, entry);
        const current = applied.currentSigKid;
        if (entry.party === keyring.service && current !== undefined && !keyring.hasOwn(current)) {
          // A sealed key file opens asynchronously (key-protection.ts): until it has, the previous key (still within
          // its overlap) keeps signing.
          const versions = opts.reloadOwnKeys?.() ?? [];
          if (Array.isArray(versions)) loadOwnVersion(keyring, current, versions, logger);
          else
            void (versions as Promise<readonly ServiceKeys[]>).then(
              (v) => loadOwnVersion(keyring, current, v, logger),
              (err: unknown) => ownKeysUnreadable(logger, entry.party, current, err),
            );
        }
        opts.onApplied?.(entry, applied, initial);
      },
      refused(party, error, initial) {
        opts.onRefused?.(party, error, initial);
      },
    },
    logger,
  );
}

/** Adds the holder's version whose signing kid is `kid`, from the versions its key file holds; logs either way. */
function loadOwnVersion(keyring: Keyring, kid: string, versions: readonly ServiceKeys[], logger: Logger): void {
  const next = versions.find((v) => v.sign.kid === kid);
  if (next === undefined) {
    logger.error(
      { event: 'keys.own.missing', party: keyring.service, kid },
      'the directory names a current key of this party whose private half is not held; signing with the previous key',
    );
    return;
  }
  keyring.addOwn(next);
  logger.info({ event: 'keys.own.rotated', party: keyring.service, kid }, 'own key version loaded');
}

function ownKeysUnreadable(logger: Logger, party: string, kid: string, err: unknown): void {
  logger.error(
    { event: 'keys.own.unreadable', party, kid, ...errorFields(err) },
    'the own key file could not be opened; signing with the previous key',
  );
}

/**
 * Applies directory entries to one of several keyrings fed by one watch (the gateway's), in order; a new own version
 * is read from the key file before its entry applies, so it signs from that moment (docs/keys.md).
 */
export class KeyringFollower {
  #queue: Promise<void> = Promise.resolve();

  constructor(
    readonly keyring: Keyring,
    private readonly logger: Logger,
    /** The holder's key versions, read again when an entry names one it does not hold. */
    private readonly reloadOwnKeys?: () => Promise<readonly ServiceKeys[]>,
    /** After each applied entry. */
    private readonly onApplied?: (entry: DirectoryEntry, applied: AppliedEntry) => void,
  ) {}

  apply(entry: DirectoryEntry): void {
    this.#queue = this.#queue.then(() => this.#apply(entry));
  }

  /** Resolves once every entry given so far is applied. */
  settled(): Promise<void> {
    return this.#queue;
  }

  async #apply(entry: DirectoryEntry): Promise<void> {
    const { keyring, logger } = this;
    const current = currentSigKid(entry);
    if (entry.party === keyring.service && current !== undefined && !keyring.hasOwn(current))
      try {
        loadOwnVersion(keyring, current, (await this.reloadOwnKeys?.()) ?? [], logger);
      } catch (err) {
        ownKeysUnreadable(logger, entry.party, current, err);
      }
    try {
      const applied = applyEntry(keyring, entry);
      this.onApplied?.(entry, applied);
    } catch (err) {
      logger.error(
        { event: 'keys.directory.refused', party: entry.party, holder: keyring.service, ...errorFields(err) },
        'key directory entry could not be applied to this keyring; the previous keys stay in force',
      );
    }
  }
}
