//! The store: the node's local database and the one place in the project
//! that touches sled (0.34, no longer maintained upstream). No sled type
//! crosses this module's public API, so the backend can be swapped here
//! alone.
//!
//! # Layout (version 5)
//!
//! Encrypted at rest: every value that says anything about a person is
//! sealed, and topic names and author keys in keys are keyed hashes (see
//! [`seal`] and [`keys`]), under [`StoreKeys`] derived from a secret the
//! caller supplies. A store opened with other keys is refused before
//! anything is written ([`StoreError::WrongKeys`]); a store of an older
//! layout is rewritten into a new directory at open ([`migrate`]).
//!
//! Everything the arrival path writes (posts, their index entries, topic
//! counts, the community log, retractions, tombstones) lives in one tree,
//! `items`, under one-byte key prefixes (see [`keys`]). A page of arrivals
//! is one `apply_batch` on that tree: atomic, and without sled's
//! cross-tree transactions, which cost 76 µs per post where a batch on one
//! tree costs about 20 (issue 17; `cargo run --release -p mutual-bench
//! --example sled_floor`). Local data that arrivals never touch (joined
//! topics, the address book, mutes, named values, the layout version) keeps
//! a tree each.
//!
//! Posts live under their time-ordered topic key, so reading a topic or
//! serving a sync range is one range scan over the posts themselves. Each
//! batch also writes one author log entry naming the posts it adds and
//! deletes; folded at open, it gives each author's posts and each post's
//! place by id, in memory (`authors.rs`): no index entry per post on disk.
//!
//! # Consistency
//!
//! Every write of the `items` tree goes through one lock (the [`Memory`]),
//! which also holds what the checks of the hot path ask on every post: the
//! topic counts, the retractions and the author and id indexes, kept in
//! memory and written (or logged) with the same batch. So a
//! read-check-write sequence is never interleaved with another writer,
//! and after a crash there is never an index entry without
//! its post, a post without its entries, or a count that is off.
//! [`Store::check_integrity`] verifies exactly that (the crash tests call
//! it, and `mutual doctor` runs it), and [`Store::repair`] restores it
//! should a bug or a damaged disk ever break it.
//!
//! # Durability
//!
//! sled writes to its log at once and makes it durable in the background
//! (every [`BACKGROUND_FLUSH_MS`]). Call [`Store::flush`] before telling
//! the local user a post is published; posts and actions from the network
//! are made durable by the caller on an interval with
//! [`Store::flush_if_dirty`] or a [`Flusher`] (anything lost in a
//! crash comes back by sync).
//!
//! Each flush that made new items durable also rewrites a small record of
//! what was acknowledged, outside sled ([`ack`]): a store that at open
//! holds less than its record says lost acknowledged writes to damage, and
//! says so ([`Store::damage`]).
//!
//! # Corrupt data
//!
//! The store never panics on what it reads from disk: a value that does not
//! decode is skipped with a warning naming its id (never its content), and
//! reported by [`Store::check_integrity`].

pub mod ack;
#[cfg(test)]
mod at_rest_tests;
mod authors;
mod error;
mod integrity;
mod keys;
mod local;
mod log;
mod migrate;
mod posts;
mod scan;
mod seal;
#[cfg(test)]
mod tests;
mod tombstones;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use protocol::sync::{Accumulator, SyncScope};
use protocol::{Message, SignedPost, TopicName};

pub use ack::{Damage, LostScope};
use error::During;
pub use error::StoreError;
use keys::{encode_u64, parse_id, parse_u64, prefixed, whole_kind, Tag, COUNT, ID_LEN};
pub use seal::{StoreKeys, StoreSecret, BARE_STORE_SECRET, SEAL_OVERHEAD};

/// How often sled makes its log durable on its own, in ms: bounds what a
/// crash can lose of what the caller has not flushed.
pub const BACKGROUND_FLUSH_MS: u64 = 100;
/// Version of the on-disk layout described in [`keys`]. A store written by
/// a newer layout is refused rather than misread; an older one is migrated
/// forward at open.
pub const LAYOUT_VERSION: u64 = 5;

/// sled's page cache, in bytes (sled's default is 1 GiB). With a 1,000,000
/// post store, reading a topic's newest page took the same time with 32
/// MiB, 64 MiB and 1 GiB (it touches a handful of pages). While ingesting
/// 100,000 posts (the bench's `--ingest-child`), the peak RSS was 148 MiB
/// with 64 MiB and 103 MiB with 16 MiB, at about the same rate, so the
/// cache is kept small: the OS page cache still holds the store's files.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Key of the layout version in the `info` tree.
const LAYOUT_KEY: &str = "layout";

pub use crate::network::peers::PeerRecord;
pub use log::Retracted;
pub use posts::Forgotten;

/// Makes the store's writes durable from another thread (see
/// [`Store::flusher`]); what it flushes is everything written before the
/// call, by anyone.
#[derive(Clone)]
pub struct Flusher {
    backend: Arc<RwLock<Arc<Backend>>>,
    dirty: Arc<AtomicBool>,
    /// To capture the stored-ever counts before the flush.
    memory: Arc<Mutex<Memory>>,
    /// The record of acknowledged writes (`None` for a temporary store).
    acked: Option<Arc<ack::Recorder>>,
}

impl Flusher {
    /// Blocks until everything written so far is on disk, then records
    /// what that made durable ([`ack`]; only when a scope grew, and a
    /// failure to write the record is logged, not returned: the items
    /// themselves are durable).
    pub fn flush(&self) -> Result<(), StoreError> {
        // Captured before the flush: everything counted here is durable
        // once it returns.
        let durable = self.acked.as_ref().map(|_| {
            self.memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ever
                .clone()
        });
        self.dirty.store(false, Ordering::Release);
        let db = current(&self.backend).db.clone();
        let result = db.flush().map(|_| ()).during("flush to disk");
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        if let (Ok(()), Some(acked), Some(durable)) = (&result, &self.acked, durable) {
            acked.record(&durable);
        }
        result
    }
}

/// What the hot path asks about on every post, kept in memory, and the
/// lock that every write of the `items` tree holds.
#[derive(Default)]
struct Memory {
    /// Posts stored per topic (the `c` entries, mirrored).
    counts: HashMap<Vec<u8>, u64>,
    /// Every retraction: post id → the keys that signed one for it (more
    /// than one only when someone retracted a post that is not theirs).
    retracted: HashMap<[u8; ID_LEN], Vec<[u8; ID_LEN]>>,
    /// Items ever stored per scope (the `n` entries, mirrored).
    ever: HashMap<Vec<u8>, u64>,
    /// Every author's posts (the author log, folded).
    authors: authors::AuthorIndex,
    /// The name of each topic tag (the `m` entries, opened).
    names: HashMap<Tag, TopicName>,
}

impl Memory {
    fn is_retracted_by(&self, post: &[u8; ID_LEN], author: &[u8; ID_LEN]) -> bool {
        self.retracted
            .get(post)
            .is_some_and(|who| who.contains(author))
    }
}

/// Writes gathered for one atomic `apply_batch` of the `items` tree, with
/// what they change in [`Memory`] (applied only once the batch is written).
#[derive(Default)]
struct Pending {
    batch: sled::Batch,
    count_delta: HashMap<Vec<u8>, i64>,
    /// Items newly stored per scope (for the `n` entries).
    stored: HashMap<Vec<u8>, u64>,
    /// Posts stored and deleted, for this batch's author log entry.
    author_lines: Vec<authors::Line>,
    retracted: Vec<([u8; ID_LEN], [u8; ID_LEN])>,
    /// A deletion or a log write: the cached scope sums are stale.
    forget_sums: bool,
    /// Anything at all was added to the batch.
    writes: bool,
    /// Bytes of keys and values inserted (for [`CHECKPOINT_BYTES`]).
    batch_bytes: u64,
    /// Topic names written (`m` entries), for [`Memory::names`].
    names: Vec<(Tag, TopicName)>,
}

impl Pending {
    fn insert(&mut self, key: Vec<u8>, value: impl Into<sled::IVec>) {
        let value = value.into();
        self.batch_bytes += (key.len() + value.len()) as u64;
        self.batch.insert(key, value);
        self.writes = true;
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.batch.remove(key);
        self.writes = true;
    }

    fn count(&mut self, topic: &[u8], delta: i64) {
        *self.count_delta.entry(topic.to_vec()).or_default() += delta;
    }

    /// One more item stored in `scope` (a topic's tag, or [`LOG_SCOPE`]).
    fn stored_one(&mut self, scope: &[u8]) {
        *self.stored.entry(scope.to_vec()).or_default() += 1;
    }
}

/// The scope name of the community log in the `n` entries.
const LOG_SCOPE: &[u8] = b"";

/// The node's local database: posts with their indexes, the community log,
/// retractions, tombstones, joined topics, the address book, mutes and
/// small named values. Cheap reads; every multi-key write is atomic.
/// Clones share the same database: reads run on other threads than the
/// core's (sled's handles are `Send + Sync`).
#[derive(Clone)]
pub struct Store {
    /// The open database; replaced as a whole at each checkpoint.
    backend: Arc<RwLock<Arc<Backend>>>,
    /// Where it lives, for error messages.
    path: PathBuf,
    /// Bytes written to `items` since the database was last opened: what
    /// an open after a crash would replay (see [`CHECKPOINT_BYTES`]).
    since_open: Arc<AtomicU64>,
    /// The write lock, and what the hot path's checks read.
    memory: Arc<Mutex<Memory>>,
    /// Set by every write, cleared by a flush: lets an interval flush skip
    /// the fsync when nothing changed.
    dirty: Arc<AtomicBool>,
    /// Lives in memory only (nothing to reopen on [`Store::close`]).
    temporary: bool,
    /// The accumulator of each sync scope's whole set, once computed:
    /// what every periodic sync session starts by comparing, so a session
    /// between nodes that already agree reads no keys. Kept up to date by
    /// [`Store::insert_posts`]; every other write to a scope forgets it.
    scope_sums: Arc<Mutex<HashMap<SyncScope, Accumulator>>>,
    /// The record of acknowledged writes, as found at open and kept up by
    /// every flush (`None` for a temporary store).
    acked: Option<Arc<ack::Recorder>>,
    /// What seals the values and hashes the index keys.
    keys: Arc<StoreKeys>,
}

/// sled's handles on one open database.
struct Backend {
    db: sled::Db,
    /// Posts, indexes, counts, log, retractions, tombstones (see [`keys`]).
    items: sled::Tree,
    topics: sled::Tree,
    peers: sled::Tree,
    mutes: sled::Tree,
    meta: sled::Tree,
    info: sled::Tree,
}

impl Backend {
    fn of(db: sled::Db, path: &Path) -> Result<Backend, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(|e| StoreError::opening(path, e));
        Ok(Backend {
            items: tree("items")?,
            topics: tree("topics")?,
            peers: tree("peers")?,
            mutes: tree("mutes")?,
            meta: tree("meta")?,
            info: tree("info")?,
            db,
        })
    }
}

/// The backend in use now.
fn current(backend: &RwLock<Arc<Backend>>) -> Arc<Backend> {
    Arc::clone(&backend.read().unwrap_or_else(PoisonError::into_inner))
}

/// Bytes written to the `items` tree after which the store checkpoints:
/// sled 0.34 writes the snapshot of its page table only while opening a
/// database, and an open after a crash replays everything written since
/// the last one (2.5 µs per post of layout 2: seconds for a million, by
/// `cargo run --release -p mutual-bench --example crash_replay`). A
/// checkpoint flushes, closes and reopens the database (the writer and the
/// readers wait meanwhile), which bounds that replay.
pub const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

/// How long a checkpoint waits for readers of the old database to finish
/// before giving up this time (it is tried again after the next batch).
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long opening a store waits for its directory's lock before saying
/// the directory is in use. A store of this process that was just closed
/// may hold it a moment longer: sled's own threads finish its last writes
/// after the last handle is dropped (a node restarted at once in the tests
/// found its directory "in use" under load).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled on `dir`, waiting up to [`LOCK_WAIT`] for the lock.
fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled_config(dir).open() {
            Ok(db) => return Ok(db),
            Err(e) => match StoreError::opening(dir, e) {
                StoreError::InUse { .. } if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                err => return Err(err),
            },
        }
    }
}

/// The post inside (opened) `Message::Post` bytes, or `None` for anything
/// else (damaged bytes, another kind of message).
fn decode_post(bytes: &[u8]) -> Option<SignedPost> {
    match Message::decode(bytes) {
        Ok(Message::Post(p)) => Some(p),
        _ => None,
    }
}

/// How the store's sled database is opened (by [`Store::open`] and again
/// by [`Store::close`]).
fn sled_config(dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(Some(BACKGROUND_FLUSH_MS))
}

/// Iterates `tree` over `[start, end)`, or over nothing when the range is
/// empty or inverted (sled must never be handed an inverted range).
fn range(tree: &sled::Tree, (start, end): (Vec<u8>, Vec<u8>)) -> sled::Iter {
    if start < end {
        tree.range(start..end)
    } else {
        tree.range(end.clone()..end)
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. Fails with
    /// [`StoreError::InUse`] when another node already has it open: sled
    /// locks the directory, because two writers would corrupt it.
    ///
    /// `keys` seal everything the store writes (derive them with
    /// [`StoreKeys::derive`] from the data directory's store secret). A
    /// store sealed under other keys is refused with
    /// [`StoreError::WrongKeys`] before anything in `dir` is touched; a
    /// store of an older layout is migrated (see [`migrate`]).
    pub fn open(dir: &Path, keys: StoreKeys) -> Result<Store, StoreError> {
        Store::open_with(dir, Arc::new(keys))
    }

    /// [`Store::open`] with shared keys (the migration opens the new
    /// directory with the same ones).
    fn open_with(dir: &Path, keys: Arc<StoreKeys>) -> Result<Store, StoreError> {
        migrate::finish_interrupted_swap(dir)?;
        match seal::read_check(dir, &keys)? {
            seal::Check::Matches => {}
            seal::Check::Other => {
                return Err(StoreError::WrongKeys {
                    path: dir.to_path_buf(),
                })
            }
            seal::Check::Missing => {
                let db = open_db(dir)?;
                match layout_of(&db, dir)? {
                    Some(v) if v > LAYOUT_VERSION => {
                        return Err(StoreError::NewerLayout {
                            path: dir.to_path_buf(),
                            found: v,
                            supported: LAYOUT_VERSION,
                        })
                    }
                    Some(3..=LAYOUT_VERSION) => {
                        return Err(StoreError::Corrupt {
                            detail: format!(
                                "the key check file {} is missing",
                                dir.join(seal::CHECK_FILE).display()
                            ),
                        })
                    }
                    _ if is_empty(&db)? => {
                        // A new store: its check first, so a crash before
                        // the layout is written leaves a store that opens.
                        seal::write_check(dir, &keys)?;
                        let store = Store::from_db(db, dir.to_path_buf(), false, keys)?;
                        migrate::remove_leftovers(dir);
                        return Ok(store);
                    }
                    _ => migrate::to_layout_3(dir, db, &keys)?,
                }
            }
        }
        let db = open_db(dir)?;
        // Holding the directory's lock: no migration of it is under way.
        migrate::remove_leftovers(dir);
        Store::from_db(db, dir.to_path_buf(), false, keys)
    }

    /// A store that lives in memory and vanishes when dropped: for tests
    /// and simulations (sealed under random keys all the same, so it
    /// behaves as a store on disk does).
    pub fn temporary() -> Result<Store, StoreError> {
        let path = PathBuf::from("<temporary store>");
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| StoreError::opening(&path, e))?;
        Store::from_db(db, path, true, Arc::new(StoreKeys::random()))
    }

    /// Closes the store after a clean stop, leaving sled a fresh snapshot
    /// of its page table so that the next [`Store::open`] need not replay
    /// everything written since this one opened.
    ///
    /// sled 0.34 writes that snapshot only while opening (its
    /// `snapshot_after_ops` setting does nothing): this opens it once
    /// more, now, and closes it, so the replay moves from the next start to
    /// this stop.
    pub fn close(self) -> Result<(), StoreError> {
        self.flush()?;
        let path = self.path.clone();
        let temporary = self.temporary;
        // Every handle on the database must be gone before it is reopened:
        // sled holds the directory's lock until then.
        drop(self);
        if !temporary {
            drop(open_db(&path)?);
        }
        Ok(())
    }

    fn from_db(
        db: sled::Db,
        path: PathBuf,
        temporary: bool,
        keys: Arc<StoreKeys>,
    ) -> Result<Store, StoreError> {
        let store = Store {
            backend: Arc::new(RwLock::new(Arc::new(Backend::of(db, &path)?))),
            since_open: Arc::new(AtomicU64::new(0)),
            memory: Arc::new(Mutex::new(Memory::default())),
            dirty: Arc::new(AtomicBool::new(false)),
            temporary,
            scope_sums: Arc::new(Mutex::new(HashMap::new())),
            acked: (!temporary).then(|| {
                Arc::new(ack::Recorder::new(
                    path.clone(),
                    ack::read(&path, &keys),
                    Arc::clone(&keys),
                ))
            }),
            path,
            keys,
        };
        store.check_layout()?;
        if !store.load_memory()? {
            // The duplicate check and the per-author limit trust the
            // author index: rebuilt from the posts, not left with a hole.
            let fixed = store.repair()?;
            tracing::warn!("rebuilt the author index from the posts ({fixed} fixes)");
        }
        Ok(store)
    }

    /// Refuses any layout but this one (older ones were migrated before
    /// the store was built); writes it into a new store.
    fn check_layout(&self) -> Result<(), StoreError> {
        let b = self.b();
        match layout_of(&b.db, &self.path)? {
            Some(LAYOUT_VERSION) => Ok(()),
            Some(v @ (3 | 4)) => {
                if v == 3 {
                    migrate::author_index_to_log(&b.items)?;
                }
                migrate::drop_id_entries(&b.items)?;
                b.info
                    .insert(LAYOUT_KEY, &encode_u64(LAYOUT_VERSION)[..])
                    .during("write the layout version")?;
                tracing::info!(
                    "moved the store to layout 5 (the author index as a log, posts found by id in memory)"
                );
                Ok(())
            }
            Some(v) if v > LAYOUT_VERSION => Err(StoreError::NewerLayout {
                path: self.path.clone(),
                found: v,
                supported: LAYOUT_VERSION,
            }),
            None if is_empty(&b.db)? => {
                b.info
                    .insert(LAYOUT_KEY, &encode_u64(LAYOUT_VERSION)[..])
                    .during("write the layout version")?;
                Ok(())
            }
            _ => Err(StoreError::Corrupt {
                detail: "the store's layout version does not match its key check".into(),
            }),
        }
    }

    /// Reads the counts and retractions into memory (one entry per topic,
    /// one per retraction: small next to the posts) and folds the author
    /// log. `false` when an author log entry was damaged (the index then
    /// misses its posts).
    fn load_memory(&self) -> Result<bool, StoreError> {
        let b = self.b();
        let mut memory = Memory::default();
        for kv in range(&b.items, whole_kind(COUNT)) {
            let (k, v) = kv.during("read topic counts")?;
            match (k.get(1..), parse_u64(&v)) {
                (Some(topic), Some(n)) if !topic.is_empty() => {
                    memory.counts.insert(topic.to_vec(), n);
                }
                _ => tracing::warn!("skipping a malformed topic count"),
            }
        }
        for kv in range(&b.items, whole_kind(keys::EVER)) {
            let (k, v) = kv.during("read the stored-ever counts")?;
            match (k.get(1..), parse_u64(&v)) {
                (Some(scope), Some(n)) => {
                    memory.ever.insert(scope.to_vec(), n);
                }
                _ => tracing::warn!("skipping a malformed stored-ever count"),
            }
        }
        for kv in range(&b.items, whole_kind(keys::NAME)) {
            let (k, v) = kv.during("read topic names")?;
            let tag = k.get(1..).and_then(keys::parse_tag);
            let name = self.keys.open(&k, &v).and_then(|n| {
                std::str::from_utf8(&n)
                    .ok()
                    .and_then(|n| TopicName::parse_exact(n).ok())
            });
            match (tag, name) {
                (Some(tag), Some(name)) => {
                    memory.names.insert(tag, name);
                }
                _ => tracing::warn!(key = %keys::hex_tail(&k), "skipping an unreadable topic name"),
            }
        }
        let mut author_log_whole = true;
        for kv in range(&b.items, whole_kind(keys::AUTHOR_LOG)) {
            let (k, v) = kv.during("read the author log")?;
            match (
                k.get(1..).and_then(parse_u64),
                authors::Line::decode_all(&v),
            ) {
                (Some(seq), Some(lines)) => memory.authors.apply(seq, &lines),
                _ => {
                    tracing::warn!(key = %keys::hex_tail(&k), "skipping a damaged author log entry");
                    author_log_whole = false;
                }
            }
        }
        for (post, author) in self.read_retractions()? {
            memory.retracted.entry(post.0).or_default().push(author.0);
        }
        for who in memory.retracted.values_mut() {
            who.sort_unstable();
        }
        *self.lock() = memory;
        Ok(author_log_whole)
    }

    /// The write lock of the `items` tree, with the in-memory state.
    fn lock(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `pending` in one atomic batch (with the topic counts it
    /// changes) and then updates memory to match. On failure nothing was
    /// written and memory is unchanged.
    fn commit(&self, memory: &mut Memory, mut pending: Pending) -> Result<(), StoreError> {
        if !pending.writes && pending.count_delta.is_empty() {
            return Ok(());
        }
        let mut ever = Vec::with_capacity(pending.stored.len());
        for (scope, n) in pending.stored.drain() {
            let total = memory
                .ever
                .get(&scope)
                .copied()
                .unwrap_or(0)
                .saturating_add(n);
            pending
                .batch
                .insert(prefixed(keys::EVER, &scope), &encode_u64(total)[..]);
            ever.push((scope, total));
        }
        let mut counts = Vec::with_capacity(pending.count_delta.len());
        for (topic, delta) in pending.count_delta.drain() {
            if delta == 0 {
                continue;
            }
            let old = memory.counts.get(&topic).copied().unwrap_or(0);
            let new = old.saturating_add_signed(delta);
            let key = prefixed(COUNT, &topic);
            if new == 0 {
                pending.batch.remove(key);
            } else {
                pending.batch.insert(key, &encode_u64(new)[..]);
            }
            counts.push((topic, new));
        }
        let author_log = (!pending.author_lines.is_empty()).then(|| {
            let seq = memory.authors.next_seq();
            pending.batch.insert(
                prefixed(keys::AUTHOR_LOG, &encode_u64(seq)),
                authors::Line::encode_all(&pending.author_lines),
            );
            seq
        });
        let written = pending.batch_bytes;
        self.b()
            .items
            .apply_batch(pending.batch)
            .during("write to the store")?;
        for (topic, n) in counts {
            if n == 0 {
                memory.counts.remove(&topic);
            } else {
                memory.counts.insert(topic, n);
            }
        }
        memory.ever.extend(ever);
        memory.names.extend(pending.names);
        if let Some(seq) = author_log {
            memory.authors.apply(seq, &pending.author_lines);
        }
        for (post, author) in pending.retracted {
            let who = memory.retracted.entry(post).or_default();
            if !who.contains(&author) {
                who.push(author);
                who.sort_unstable();
            }
        }
        if pending.forget_sums {
            self.forget_scope_sums();
        }
        self.touch();
        self.since_open.fetch_add(written, Ordering::AcqRel);
        Ok(())
    }

    /// Checkpoints now, whatever was written (tests, benchmarks).
    pub fn checkpoint_now(&self) -> Result<bool, StoreError> {
        if self.temporary {
            return Ok(false);
        }
        let _writer = self.lock();
        self.checkpoint()
    }

    /// Checkpoints (see [`Store::checkpoint`]) once [`CHECKPOINT_BYTES`]
    /// were written since the database was opened. The writer calls it
    /// between operations, holding no handle of its own on the database.
    /// Returns whether it checkpointed.
    pub fn checkpoint_if_due(&self) -> Result<bool, StoreError> {
        if self.temporary || self.since_open.load(Ordering::Acquire) < CHECKPOINT_BYTES {
            return Ok(false);
        }
        let _writer = self.lock();
        self.checkpoint()
    }

    /// The open database's handles, for one operation (held by the caller
    /// until it is done, so a checkpoint waits for it).
    fn b(&self) -> Arc<Backend> {
        current(&self.backend)
    }

    /// Flushes, closes and reopens the database, so that sled writes a
    /// fresh snapshot and an open after a crash replays at most about
    /// [`CHECKPOINT_BYTES`] (see there). The caller holds the write lock
    /// ([`Memory`]); readers wait for the reopen. If readers of the old
    /// database do not finish within [`CHECKPOINT_WAIT`], it is skipped
    /// and tried again later; if the reopen fails, the store fails like a
    /// failed write (the node stops and is started again).
    fn checkpoint(&self) -> Result<bool, StoreError> {
        let started = std::time::Instant::now();
        let mut slot = self.backend.write().unwrap_or_else(PoisonError::into_inner);
        slot.db.flush().during("flush to disk")?;
        let deadline = started + CHECKPOINT_WAIT;
        // Our slot and nothing else: no reader holds the old database.
        while Arc::strong_count(&slot) > 1 {
            if std::time::Instant::now() >= deadline {
                tracing::warn!("store checkpoint skipped: readers still busy");
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Leave an empty database in the slot while the real one closes.
        let placeholder = Arc::new(Backend::of(
            sled::Config::new()
                .temporary(true)
                .open()
                .map_err(|e| StoreError::opening(&self.path, e))?,
            &self.path,
        )?);
        drop(std::mem::replace(&mut *slot, placeholder));
        let reopened = Backend::of(open_db(&self.path)?, &self.path)?;
        *slot = Arc::new(reopened);
        self.since_open.store(0, Ordering::Release);
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            "store checkpoint"
        );
        Ok(true)
    }

    /// Records that something was written since the last flush.
    fn touch(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Drops every cached scope accumulator: called by each write to a
    /// scope's keys other than [`Store::insert_posts`] (deletions, the
    /// community log, repair), which are rare.
    fn forget_scope_sums(&self) {
        self.scope_sums
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Items ever stored per scope (`None`: the community log; a topic's
    /// name otherwise). These only grow, and are written in the same batch
    /// as the items: a store that, at open, holds smaller numbers than were
    /// once made durable lost acknowledged writes (damage that sled took
    /// for the end of its log).
    pub fn stored_ever(&self) -> Vec<(Option<String>, u64)> {
        let memory = self.lock();
        let mut out: Vec<(Option<String>, u64)> = memory
            .ever
            .iter()
            .map(|(scope, n)| (scope_label(&memory.names, scope), *n))
            .collect();
        out.sort();
        out
    }

    /// The plaintext of the value at `key` of the `items` tree (`None`:
    /// it does not open, which is damage; the caller warns).
    fn open_value(&self, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        self.keys.open(key, value)
    }

    /// The post sealed at `key` (a `p` entry), if it opens and decodes.
    fn open_post(&self, key: &[u8], value: &[u8]) -> Option<SignedPost> {
        decode_post(&self.open_value(key, value)?)
    }

    /// The tag of a topic under this store's keys.
    fn topic_tag(&self, topic: &TopicName) -> Tag {
        self.keys.topic_tag(topic)
    }

    // ----- durability ------------------------------------------------------

    /// Makes everything written so far durable before returning (an fsync:
    /// milliseconds, tens of them on a slow disk). The event loop never
    /// calls it while serving: it hands a [`Flusher`] to a blocking thread.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flusher().flush()
    }

    /// Like [`Store::flush`], but only if something was written since the
    /// last flush: cheap enough to call on a short interval for what
    /// arrives from the network. Returns whether it flushed.
    pub fn flush_if_dirty(&self) -> Result<bool, StoreError> {
        if !self.dirty.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// A handle that flushes from another thread, so that whoever owns the
    /// store keeps serving while the disk syncs. It keeps the database
    /// open: every one must be dropped before [`Store::close`].
    pub fn flusher(&self) -> Flusher {
        Flusher {
            backend: Arc::clone(&self.backend),
            dirty: Arc::clone(&self.dirty),
            memory: Arc::clone(&self.memory),
            acked: self.acked.clone(),
        }
    }

    // ----- acknowledged writes ---------------------------------------------

    /// Acknowledged writes this store no longer holds, or a record of them
    /// that could not be trusted at open; `None` when all is well (and
    /// always for a temporary store). Compared live: as sync brings the
    /// missing items back, the stored-ever counts grow to the record's
    /// again and the damage clears by itself. See [`ack`].
    pub fn damage(&self) -> Option<Damage> {
        let acked = self.acked.as_ref()?;
        let memory = self.lock();
        acked.damage(&memory.ever, &|scope| scope_label(&memory.names, scope))
    }

    /// What the record of acknowledged writes says per scope (`None`: the
    /// community log), or `None` for a temporary store. Beside
    /// [`Store::stored_ever`] it is what `mutual doctor` compares.
    pub fn acknowledged(&self) -> Option<Vec<(Option<String>, u64)>> {
        let acked = self.acked.as_ref()?;
        let memory = self.lock();
        Some(
            acked
                .acknowledged()
                .into_iter()
                .map(|(scope, n)| (scope_label(&memory.names, &scope), n))
                .collect(),
        )
    }

    /// Accepts that the missing acknowledged items are gone: the record is
    /// rewritten from what the store holds, and [`Store::damage`] clears.
    /// For `mutual doctor --accept-loss`, when no peer can send them back.
    pub fn accept_loss(&self) -> Result<(), StoreError> {
        let b = self.b();
        let Some(acked) = &self.acked else {
            return Ok(());
        };
        let held = self.lock().ever.clone();
        b.db.flush().during("flush to disk")?;
        acked.reset(&held).map_err(|e| StoreError::Io {
            during: "rewrite the record of acknowledged writes",
            detail: e.to_string(),
        })
    }

    /// Whether something was written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Bytes the store takes on disk (for status and for limits).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        let b = self.b();
        b.db.size_on_disk().during("measure its size on disk")
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The name of a scope of the stored-ever counts: `None` for the
/// community log, the topic's name when its tag is named, and the tag's
/// beginning in hex otherwise (a topic whose name entry was lost).
fn scope_label(names: &HashMap<Tag, TopicName>, scope: &[u8]) -> Option<String> {
    if scope.is_empty() {
        return None;
    }
    Some(match keys::parse_tag(scope).and_then(|t| names.get(&t)) {
        Some(name) => name.to_string(),
        None => format!("(unnamed {})", keys::hex_tail(scope)),
    })
}

/// The layout version written in `db`, if any.
fn layout_of(db: &sled::Db, path: &Path) -> Result<Option<u64>, StoreError> {
    let info = db
        .open_tree("info")
        .map_err(|e| StoreError::opening(path, e))?;
    match info.get(LAYOUT_KEY).during("read the layout version")? {
        None => Ok(None),
        Some(v) => parse_u64(&v).map(Some).ok_or_else(|| StoreError::Corrupt {
            detail: "the layout version does not decode".into(),
        }),
    }
}

/// Whether `db` holds nothing at all (a new store).
fn is_empty(db: &sled::Db) -> Result<bool, StoreError> {
    for name in db.tree_names() {
        let tree = db.open_tree(&name).during("read the store")?;
        if !tree.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A 32-byte id at the end of `bytes`, if it is long enough.
fn id_suffix(bytes: &[u8]) -> Option<[u8; ID_LEN]> {
    parse_id(bytes.get(bytes.len().checked_sub(ID_LEN)?..)?)
}
