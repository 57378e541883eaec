//! The store: the node's local database and the one place in the project
//! that touches sled (0.34, no longer maintained upstream). No sled type
//! crosses this module's public API, so the backend can be swapped here
//! alone.
//!
//! # Trees
//!
//! | tree             | key                                        | value                         |
//! |------------------|--------------------------------------------|-------------------------------|
//! | `posts`          | post id                                    | encoded `Message::Post` (wire bytes: sync serves them as they are) |
//! | `topic_index`    | topic ‖ 0x00 ‖ created_at (BE) ‖ post id   | ∅                             |
//! | `author_index`   | author ‖ created_at (BE) ‖ post id         | topic                         |
//! | `counts`         | topic                                      | post count (u64 BE)           |
//! | `log`            | created_at (BE) ‖ id                       | encoded `Message` (moderation actions, retractions, sealed reports) |
//! | `retractions`    | post id ‖ author who retracted it          | ∅                             |
//! | `tombstones`     | topic ‖ 0x00 ‖ created_at (BE) ‖ post id   | caller's tombstone bytes      |
//! | `tombstone_ids`  | post id                                    | its `tombstones` key          |
//! | `topics`         | joined topic                               | joined at (ms, u64 BE)        |
//! | `peers`          | peer id                                    | addresses (newest first)      |
//! | `mutes`          | author                                     | ∅                             |
//! | `meta`           | name                                       | caller's bytes                |
//! | `info`           | `layout`                                   | layout version (u64 BE)       |
//!
//! Big-endian times make byte order time order, so reading a topic newest
//! first, a page, or a sync range is one range scan.
//!
//! # Consistency
//!
//! A post, its two index entries and its topic's count are written and
//! deleted in one sled transaction, so after a crash there is never an index
//! entry without its post, a post without its entries, or a count that is
//! off. [`Store::check_integrity`] verifies exactly that (the crash tests
//! call it), and [`Store::repair`] restores it should a bug or a damaged
//! disk ever break it.
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
//! # Corrupt data
//!
//! The store never panics on what it reads from disk: a value that does not
//! decode is skipped with a warning naming its id (never its content), and
//! reported by [`Store::check_integrity`].

mod error;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use protocol::sync::{Accumulator, ItemKey, SyncScope};
use protocol::{Message, PostId, PublicKey, Scope, SignedPost, TopicName, VerifiedPost};
use sled::transaction::{
    ConflictableTransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;

use error::During;
pub use error::StoreError;
use keys::{
    author_key, encode_u64, hex_tail, item_key_bytes, parse_id, parse_item_key, parse_u64,
    retraction_key, split_author_key, split_retraction_key, split_topic_key, topic_end, topic_key,
    topic_prefix, ID_LEN,
};

/// How often sled makes its log durable on its own, in ms: bounds what a
/// crash can lose of what the caller has not flushed.
pub const BACKGROUND_FLUSH_MS: u64 = 100;
/// Version of the on-disk layout described in the module docs. A store
/// written by a newer layout is refused rather than misread.
pub const LAYOUT_VERSION: u64 = 1;

/// sled's page cache, in bytes (sled's default is 1 GiB). With a 1,000,000
/// post store, reading a topic's newest page took the same time with 32
/// MiB, 64 MiB and 1 GiB (it touches a handful of pages). While ingesting
/// 100,000 posts (the bench's `--ingest-child`), the peak RSS was 148 MiB
/// with 64 MiB and 103 MiB with 16 MiB, at about the same rate, so the
/// cache is kept small: the OS page cache still holds the store's files.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Largest peer record written or read back (8 addresses of 512 bytes and
/// their lengths fit easily).
const PEER_VALUE_LIMIT: usize = 8 * 1024;
/// Key of the layout version in the `info` tree.
const LAYOUT_KEY: &str = "layout";

pub use crate::network::peers::PeerRecord;

/// What [`Store::apply_retraction`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retracted {
    /// The retraction was not in the community log before (false: a
    /// duplicate, to be neither relayed nor announced again).
    pub new_in_log: bool,
    /// The post it deleted, if it was stored and written by the retracting
    /// author.
    pub removed: Option<SignedPost>,
}

/// Makes the store's writes durable from another thread (see
/// [`Store::flusher`]); what it flushes is everything written before the
/// call, by anyone.
#[derive(Clone)]
pub struct Flusher {
    db: sled::Db,
    dirty: Arc<AtomicBool>,
}

impl Flusher {
    /// Blocks until everything written so far is on disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.dirty.store(false, Ordering::Release);
        let result = self.db.flush().map(|_| ()).during("flush to disk");
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result
    }
}

/// A transaction body's result; transactions never abort on purpose (a
/// refusal is an `Ok` value), so the abort type is uninhabited.
type Tx<T> = Result<T, ConflictableTransactionError<Infallible>>;

/// The node's local database: posts with their indexes, the community log,
/// retractions, tombstones, joined topics, the address book, mutes and
/// small named values. Cheap reads; every multi-tree write is atomic.
/// Clones share the same database: reads run on other threads than the
/// core's (sled's handles are `Send + Sync`).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Where it lives, for error messages.
    path: PathBuf,
    posts: sled::Tree,
    topic_index: sled::Tree,
    author_index: sled::Tree,
    counts: sled::Tree,
    log: sled::Tree,
    retractions: sled::Tree,
    tombstones: sled::Tree,
    tombstone_ids: sled::Tree,
    topics: sled::Tree,
    peers: sled::Tree,
    mutes: sled::Tree,
    meta: sled::Tree,
    info: sled::Tree,
    /// Set by every write, cleared by a flush: lets an interval flush skip
    /// the fsync when nothing changed.
    dirty: Arc<AtomicBool>,
    /// Lives in memory only (nothing to reopen on [`Store::close`]).
    temporary: bool,
    /// The accumulator of each sync scope's whole set, once computed:
    /// what every periodic sync session starts by comparing, so a session
    /// between nodes that already agree reads no keys (a full scan took
    /// the event loop tens of ms per session with 1,000 posts and grows
    /// with the store). Kept up to date by [`Store::insert_posts`]; every
    /// other write to a scope forgets it ([`Store::forget_scope_sums`]).
    scope_sums: Arc<Mutex<HashMap<SyncScope, Accumulator>>>,
}

/// The keys a stored post occupies in each tree.
struct PostKeys {
    id: [u8; ID_LEN],
    topic: Vec<u8>,
    topic_key: Vec<u8>,
    author_key: Vec<u8>,
}

impl PostKeys {
    fn of(post: &SignedPost, id: &PostId) -> PostKeys {
        let key = ItemKey {
            created_at: post.content.created_at,
            id: id.0,
        };
        let topic = post.content.topic.as_str().as_bytes().to_vec();
        PostKeys {
            id: id.0,
            topic_key: topic_key(&topic, &key),
            author_key: author_key(post.content.author.as_bytes(), &key),
            topic,
        }
    }
}

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

/// The post inside stored `Message::Post` bytes, or `None` for anything
/// else (damaged bytes, another kind of message).
fn decode_post(bytes: &[u8]) -> Option<SignedPost> {
    match Message::decode(bytes) {
        Ok(Message::Post(p)) => Some(p),
        _ => None,
    }
}

/// Adds `delta` to a topic's count inside a transaction; a count that
/// reaches zero is removed, so the tree only holds non-empty topics.
fn add_count(
    counts: &TransactionalTree,
    topic: &[u8],
    delta: i64,
) -> Result<(), UnabortableTransactionError> {
    let n = counts.get(topic)?.and_then(|v| parse_u64(&v)).unwrap_or(0);
    let n = n.saturating_add_signed(delta);
    if n == 0 {
        counts.remove(topic)?;
    } else {
        counts.insert(topic, &encode_u64(n)[..])?;
    }
    Ok(())
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
fn range(tree: &sled::Tree, start: Vec<u8>, end: Vec<u8>) -> sled::Iter {
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
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::from_db(open_db(dir)?, dir.to_path_buf(), false)
    }

    /// A store that lives in memory and vanishes when dropped: for tests
    /// and simulations.
    pub fn temporary() -> Result<Store, StoreError> {
        let path = PathBuf::from("<temporary store>");
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| StoreError::opening(&path, e))?;
        Store::from_db(db, path, true)
    }

    /// Closes the store after a clean stop, leaving sled a fresh snapshot
    /// of its page table so that the next [`Store::open`] need not replay
    /// everything written since this one opened.
    ///
    /// sled 0.34 writes that snapshot only while opening: a store that took
    /// a million posts in one run replayed its whole log at the next start
    /// (seconds). This opens it once more, now, and closes it: the replay
    /// moves from the next start to this stop. A store that was not closed
    /// (a crash) is still recovered by the next open, only more slowly.
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

    fn from_db(db: sled::Db, path: PathBuf, temporary: bool) -> Result<Store, StoreError> {
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| StoreError::opening(&path, e))
        };
        let store = Store {
            posts: tree("posts")?,
            topic_index: tree("topic_index")?,
            author_index: tree("author_index")?,
            counts: tree("counts")?,
            log: tree("log")?,
            retractions: tree("retractions")?,
            tombstones: tree("tombstones")?,
            tombstone_ids: tree("tombstone_ids")?,
            topics: tree("topics")?,
            peers: tree("peers")?,
            mutes: tree("mutes")?,
            meta: tree("meta")?,
            info: tree("info")?,
            dirty: Arc::new(AtomicBool::new(false)),
            db,
            path,
            temporary,
            scope_sums: Arc::new(Mutex::new(HashMap::new())),
        };
        store.check_layout()?;
        Ok(store)
    }

    /// Refuses a newer layout; brings a store written before layout
    /// versions existed up to date (it lacked `tombstone_ids`).
    fn check_layout(&self) -> Result<(), StoreError> {
        let found = self
            .info
            .get(LAYOUT_KEY)
            .during("read the layout version")?;
        match found.as_deref().map(parse_u64) {
            Some(Some(v)) if v > LAYOUT_VERSION => Err(StoreError::NewerLayout {
                path: self.path.clone(),
                found: v,
                supported: LAYOUT_VERSION,
            }),
            Some(Some(_)) => Ok(()),
            Some(None) => Err(StoreError::Corrupt {
                detail: "the layout version does not decode".into(),
            }),
            None => {
                self.rebuild_tombstone_ids()?;
                self.migrate_retractions()?;
                self.info
                    .insert(LAYOUT_KEY, &encode_u64(LAYOUT_VERSION)[..])
                    .during("write the layout version")?;
                self.touch();
                Ok(())
            }
        }
    }

    /// Rewrites retractions from the first layout (post id → author, one
    /// per post, which a bogus retraction could overwrite) into
    /// `post id ‖ author` keys.
    fn migrate_retractions(&self) -> Result<(), StoreError> {
        for kv in self.retractions.iter() {
            let (k, v) = kv.during("read retractions")?;
            if let (Some(post), Some(author)) = (parse_id(&k), parse_id(&v)) {
                self.retractions
                    .insert(&retraction_key(&post, &author)[..], &[][..])
                    .during("migrate retractions")?;
                self.retractions.remove(&k).during("migrate retractions")?;
            }
        }
        Ok(())
    }

    /// Records that something was written since the last flush.
    fn touch(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    // ----- posts -----------------------------------------------------------

    /// Stores a verified post with its index entries and its topic's count,
    /// in one transaction. `Ok(false)`, writing nothing: it is already
    /// stored, or its author retracted it (a retracted post never comes
    /// back, whoever relays it).
    pub fn insert_post(&self, post: &VerifiedPost) -> Result<bool, StoreError> {
        Ok(self
            .insert_posts(&[post])?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// Stores many posts in one transaction (what a sync page or an import
    /// batch brings): each as [`Store::insert_post`] would, in order, so a
    /// post given twice is stored once. `result[i]` says whether `posts[i]`
    /// was newly stored. One transaction instead of one per post is most of
    /// what makes ingest fast (see ARCHITECTURE.md, "Where the time goes").
    pub fn insert_posts(&self, posts: &[&VerifiedPost]) -> Result<Vec<bool>, StoreError> {
        // Encode and derive keys outside the transaction, which may rerun.
        let prepared: Vec<(PostKeys, [u8; 32], Vec<u8>)> = posts
            .iter()
            .map(|post| {
                let id = post.id();
                (
                    PostKeys::of(post.signed(), &id),
                    post.author.0,
                    Message::Post(post.signed().clone()).encode(),
                )
            })
            .collect();
        let stored = (
            &self.posts,
            &self.topic_index,
            &self.author_index,
            &self.counts,
            &self.retractions,
        )
            .transaction(
                |(posts, tindex, aindex, counts, retractions)| -> Tx<Vec<bool>> {
                    let mut stored = Vec::with_capacity(prepared.len());
                    let mut added: BTreeMap<&[u8], u64> = BTreeMap::new();
                    for (k, author, bytes) in &prepared {
                        if posts.get(k.id)?.is_some()
                            || retractions.get(retraction_key(&k.id, author))?.is_some()
                        {
                            stored.push(false);
                            continue;
                        }
                        posts.insert(&k.id[..], bytes.as_slice())?;
                        if tindex.insert(k.topic_key.as_slice(), &[][..])?.is_none() {
                            *added.entry(k.topic.as_slice()).or_default() += 1;
                        }
                        aindex.insert(k.author_key.as_slice(), k.topic.as_slice())?;
                        stored.push(true);
                    }
                    for (topic, n) in added {
                        add_count(counts, topic, n as i64)?;
                    }
                    Ok(stored)
                },
            )
            .during("write posts")?;
        if stored.contains(&true) {
            self.touch();
            let mut sums = self
                .scope_sums
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (post, new) in posts.iter().zip(&stored) {
                let scope = SyncScope::Topic(post.topic.clone());
                if let (true, Some(acc)) = (*new, sums.get_mut(&scope)) {
                    acc.add(&post.id().0);
                }
            }
        }
        Ok(stored)
    }

    /// A stored post; `None` if it is not stored (or its bytes are damaged,
    /// which is logged).
    pub fn get_post(&self, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        let Some(bytes) = self.posts.get(id.as_bytes()).during("read a post")? else {
            return Ok(None);
        };
        let post = decode_post(&bytes);
        if post.is_none() {
            tracing::warn!(post = %id.short(), "skipping a stored post that does not decode");
        }
        Ok(post)
    }

    /// The stored wire bytes of a post (an encoded `Message::Post`), for
    /// serving it without decoding and re-encoding.
    pub fn get_post_bytes(&self, id: &PostId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .posts
            .get(id.as_bytes())
            .during("read a post")?
            .map(|v| v.to_vec()))
    }

    /// Whether a post is stored; cheaper than [`Store::get_post`].
    pub fn contains_post(&self, id: &PostId) -> Result<bool, StoreError> {
        self.posts.contains_key(id.as_bytes()).during("read a post")
    }

    /// Ids of stored posts that start with `prefix`, at most `limit`: how a
    /// short printable id is resolved (two results mean it is ambiguous).
    pub fn post_ids_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<PostId>, StoreError> {
        let mut out = Vec::new();
        for k in self.posts.scan_prefix(prefix).keys().take(limit) {
            let k = k.during("read posts")?;
            if let Some(id) = parse_id(&k) {
                out.push(PostId(id));
            }
        }
        Ok(out)
    }

    /// Reads index keys from `iter` and their posts until `limit` posts are
    /// found; entries whose post is missing or damaged are skipped.
    fn posts_of_index(
        &self,
        iter: impl Iterator<Item = sled::Result<sled::IVec>>,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        for k in iter {
            let k = k.during("read a topic")?;
            let Some((_, key)) = split_topic_key(&k) else {
                tracing::warn!(key = %hex_tail(&k), "skipping a malformed topic index entry");
                continue;
            };
            let id = PostId(key.id);
            match self.get_post(&id)? {
                Some(p) => out.push(p),
                None => {
                    tracing::warn!(post = %id.short(), "a topic index entry has no readable post")
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `limit` posts of `topic`, newest first, strictly before
    /// `before` (from the newest when `None`): one page of a thread, and the
    /// next page from the last key of this one.
    pub fn topic_page(
        &self,
        topic: &TopicName,
        before: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let t = topic.as_str().as_bytes();
        let end = match before {
            Some(k) => topic_key(t, &k),
            None => topic_end(t),
        };
        let iter = range(&self.topic_index, topic_prefix(t), end).keys().rev();
        self.posts_of_index(iter, limit)
    }

    /// Up to `limit` posts of `topic` created at or after `since_ms`, oldest
    /// first: what a follower missed since it last looked.
    pub fn topic_since(
        &self,
        topic: &TopicName,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let t = topic.as_str().as_bytes();
        let start = topic_key(
            t,
            &ItemKey {
                created_at: since_ms,
                id: [0; 32],
            },
        );
        let iter = range(&self.topic_index, start, topic_end(t)).keys();
        self.posts_of_index(iter, limit)
    }

    /// Up to `limit` posts of `topic`, oldest first, strictly after
    /// `after` (from the oldest when `None`): a reader streams a topic
    /// page by page from here.
    pub fn topic_after(
        &self,
        topic: &TopicName,
        after: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let t = topic.as_str().as_bytes();
        let start = match after {
            Some(k) => {
                let mut s = topic_key(t, &k);
                // The smallest key greater than `after`'s.
                s.push(0);
                s
            }
            None => topic_prefix(t),
        };
        let iter = range(&self.topic_index, start, topic_end(t)).keys();
        self.posts_of_index(iter, limit)
    }

    /// The newest stored post of `author` (for a pseudonym to show).
    pub fn latest_post_of(&self, author: &PublicKey) -> Result<Option<SignedPost>, StoreError> {
        let Some(kv) = self.author_index.scan_prefix(author.as_bytes()).next_back() else {
            return Ok(None);
        };
        let (k, _) = kv.during("read the author index")?;
        match split_author_key(&k) {
            Some((_, key)) => self.get_post(&PostId(key.id)),
            None => Ok(None),
        }
    }

    /// Exact number of posts stored in `topic`, in O(1): the count is kept
    /// in the same transaction as the posts.
    pub fn count_topic(&self, topic: &TopicName) -> Result<u64, StoreError> {
        let v = self
            .counts
            .get(topic.as_str().as_bytes())
            .during("read a topic's count")?;
        Ok(v.and_then(|v| parse_u64(&v)).unwrap_or(0))
    }

    /// Posts stored in all topics; O(number of topics).
    pub fn post_count(&self) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for v in self.counts.iter().values() {
            let v = v.during("read topic counts")?;
            n = n.saturating_add(parse_u64(&v).unwrap_or(0));
        }
        Ok(n)
    }

    /// How many posts `author` created in `[from_ms, to_ms]`, counting at
    /// most `limit`: the per-author rate limit asks "more than N lately?".
    pub fn count_author_between(
        &self,
        author: &PublicKey,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let lo = author_key(
            author.as_bytes(),
            &ItemKey {
                created_at: from_ms,
                id: [0; 32],
            },
        );
        let hi = author_key(
            author.as_bytes(),
            &ItemKey {
                created_at: to_ms,
                id: [0xff; 32],
            },
        );
        if lo > hi {
            return Ok(0);
        }
        let mut n = 0;
        for k in self.author_index.range(lo..=hi).keys().take(limit) {
            k.during("read an author's posts")?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes a post, its index entries and its share of the count in one
    /// transaction, and writes `tombstone` in its place if given. Returns
    /// the post if it was stored and readable.
    fn remove_post(
        &self,
        id: &PostId,
        tombstone: Option<&[u8]>,
    ) -> Result<Option<SignedPost>, StoreError> {
        let Some(bytes) = self.posts.get(id.as_bytes()).during("read a post")? else {
            return Ok(None);
        };
        let Some(post) = decode_post(&bytes) else {
            tracing::warn!(post = %id.short(), "deleting a stored post that does not decode");
            self.purge_post_everywhere(id)?;
            return Ok(None);
        };
        let k = PostKeys::of(&post, id);
        let removed = (
            &self.posts,
            &self.topic_index,
            &self.author_index,
            &self.counts,
            &self.tombstones,
            &self.tombstone_ids,
        )
            .transaction(
                |(posts, tindex, aindex, counts, tombs, tomb_ids)| -> Tx<bool> {
                    if posts.remove(&k.id[..])?.is_none() {
                        return Ok(false);
                    }
                    if tindex.remove(k.topic_key.as_slice())?.is_some() {
                        add_count(counts, &k.topic, -1)?;
                    }
                    aindex.remove(k.author_key.as_slice())?;
                    if let Some(data) = tombstone {
                        if let Some(old) = tomb_ids.insert(&k.id[..], k.topic_key.as_slice())? {
                            if old.as_ref() != k.topic_key.as_slice() {
                                tombs.remove(old)?;
                            }
                        }
                        tombs.insert(k.topic_key.as_slice(), data)?;
                    }
                    Ok(true)
                },
            )
            .during("delete a post")?;
        if removed {
            self.touch();
            self.forget_scope_sums();
        }
        Ok(removed.then_some(post))
    }

    /// Deletes a post whose bytes cannot be read, with every index entry
    /// naming its id. Finding those needs a scan of both indexes: slow, but
    /// only ever needed after damage.
    fn purge_post_everywhere(&self, id: &PostId) -> Result<(), StoreError> {
        let mut tkeys = Vec::new();
        for k in self.topic_index.iter().keys() {
            let k = k.during("read the topic index")?;
            if split_topic_key(&k).is_some_and(|(_, key)| key.id == id.0) {
                tkeys.push(k);
            }
        }
        let mut akeys = Vec::new();
        for k in self.author_index.iter().keys() {
            let k = k.during("read the author index")?;
            if split_author_key(&k).is_some_and(|(_, key)| key.id == id.0) {
                akeys.push(k);
            }
        }
        (
            &self.posts,
            &self.topic_index,
            &self.author_index,
            &self.counts,
        )
            .transaction(|(posts, tindex, aindex, counts)| -> Tx<()> {
                posts.remove(id.as_bytes())?;
                for k in &tkeys {
                    if tindex.remove(k)?.is_some() {
                        if let Some((topic, _)) = split_topic_key(k) {
                            add_count(counts, topic, -1)?;
                        }
                    }
                }
                for k in &akeys {
                    aindex.remove(k)?;
                }
                Ok(())
            })
            .during("delete a damaged post")?;
        self.touch();
        self.forget_scope_sums();
        Ok(())
    }

    /// Deletes a post with all its index entries, atomically (a retraction,
    /// a block). Returns the deleted post, `None` if it was not stored.
    pub fn delete_post(&self, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        self.remove_post(id, None)
    }

    /// Deletes a post and keeps `tombstone` (the caller's bytes: author,
    /// parent, who hid it and why) in its place, in one transaction, so a
    /// crash can never leave a hidden post with neither body nor tombstone.
    /// Returns the hidden post; `None` (nothing written) if it was not
    /// stored.
    pub fn hide_post(
        &self,
        id: &PostId,
        tombstone: &[u8],
    ) -> Result<Option<SignedPost>, StoreError> {
        self.remove_post(id, Some(tombstone))
    }

    /// Deletes every post of `author` in `scope` (all topics for
    /// [`Scope::Community`]) when a block takes effect, each post atomically
    /// with its index entries. Returns the ids deleted and their topics. Found through the
    /// author index, so the cost is the author's posts, not the store.
    pub fn delete_author_posts(
        &self,
        author: &PublicKey,
        scope: &Scope,
    ) -> Result<Vec<(PostId, TopicName)>, StoreError> {
        let mut victims = Vec::new();
        for kv in self.author_index.scan_prefix(author.as_bytes()) {
            let (k, topic) = kv.during("read an author's posts")?;
            let Some((_, key)) = split_author_key(&k) else {
                tracing::warn!(key = %hex_tail(&k), "skipping a malformed author index entry");
                continue;
            };
            let in_scope = match scope {
                Scope::Community => true,
                Scope::Topic(t) => topic.as_ref() == t.as_str().as_bytes(),
            };
            if in_scope {
                victims.push(PostId(key.id));
            }
        }
        let mut out = Vec::with_capacity(victims.len());
        for id in victims {
            if let Some(removed) = self.delete_post(&id)? {
                out.push((id, removed.content.topic));
            }
        }
        Ok(out)
    }

    // ----- community log ---------------------------------------------------

    /// Adds an item (encoded `Message`) to the community log. `Ok(false)`,
    /// writing nothing, if an item with this key is already there.
    pub fn insert_log(&self, key: ItemKey, message: &[u8]) -> Result<bool, StoreError> {
        let inserted = self
            .log
            .compare_and_swap(item_key_bytes(&key), None as Option<&[u8]>, Some(message))
            .during("write to the community log")?
            .is_ok();
        if inserted {
            self.touch();
            self.forget_scope_sums();
        }
        Ok(inserted)
    }

    /// Removes an item from the community log (an expired report).
    /// `Ok(false)`: it was not there.
    pub fn remove_log(&self, key: &ItemKey) -> Result<bool, StoreError> {
        let removed = self
            .log
            .remove(item_key_bytes(key))
            .during("remove from the community log")?
            .is_some();
        if removed {
            self.touch();
            self.forget_scope_sums();
        }
        Ok(removed)
    }

    /// Whether the community log holds the item with this key.
    pub fn contains_log(&self, key: &ItemKey) -> Result<bool, StoreError> {
        self.log
            .contains_key(item_key_bytes(key))
            .during("read the community log")
    }

    /// The whole community log, oldest first: folded at start-up to rebuild
    /// the moderation state. Malformed keys are skipped with a warning.
    pub fn log_items(&self) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.log.iter() {
            let (k, v) = kv.during("read the community log")?;
            match parse_item_key(&k) {
                Some(key) => out.push((key, v.to_vec())),
                None => {
                    tracing::warn!(key = %hex_tail(&k), "skipping a malformed community log key")
                }
            }
        }
        Ok(out)
    }

    /// Number of items in the community log; O(n), for status displays.
    pub fn log_len(&self) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for k in self.log.iter().keys() {
            k.during("read the community log")?;
            n = n.saturating_add(1);
        }
        Ok(n)
    }

    // ----- retractions -----------------------------------------------------

    /// Remembers that `author` retracted `post`, so it is refused if it
    /// ever arrives again. Does not delete the post or log the retraction:
    /// [`Store::apply_retraction`] does all three atomically.
    pub fn add_retraction(&self, post: &PostId, author: &PublicKey) -> Result<(), StoreError> {
        self.retractions
            .insert(retraction_key(&post.0, &author.0), &[][..])
            .during("write a retraction")?;
        self.touch();
        Ok(())
    }

    /// Applies a retraction in one transaction: adds its message to the
    /// community log (under `key`), remembers that `author` retracted
    /// `post`, and deletes the post if `author` wrote it. A crash can
    /// therefore never leave a logged retraction whose post is still
    /// stored (a duplicate of the log item would be ignored and the post
    /// would stay forever). Applying the same retraction again is harmless
    /// and finishes anything a damaged store missed.
    pub fn apply_retraction(
        &self,
        key: ItemKey,
        message: &[u8],
        post: &PostId,
        author: &PublicKey,
    ) -> Result<Retracted, StoreError> {
        let stored = self.posts.get(post.as_bytes()).during("read a post")?;
        let target = match stored.as_deref().map(decode_post) {
            Some(Some(p)) if p.content.author == *author => Some(p),
            Some(None) => {
                tracing::warn!(post = %post.short(), "deleting a retracted post that does not decode");
                self.purge_post_everywhere(post)?;
                None
            }
            _ => None,
        };
        let keys = target.as_ref().map(|p| PostKeys::of(p, post));
        let log_key = item_key_bytes(&key);
        let (new_in_log, removed) = (
            &self.log,
            &self.retractions,
            &self.posts,
            &self.topic_index,
            &self.author_index,
            &self.counts,
        )
            .transaction(
                |(log, retractions, posts, tindex, aindex, counts)| -> Tx<(bool, bool)> {
                    let new_in_log = log.get(log_key)?.is_none();
                    if new_in_log {
                        log.insert(&log_key[..], message)?;
                    }
                    retractions.insert(&retraction_key(&post.0, &author.0)[..], &[][..])?;
                    let Some(k) = &keys else {
                        return Ok((new_in_log, false));
                    };
                    if posts.remove(&k.id[..])?.is_none() {
                        return Ok((new_in_log, false));
                    }
                    if tindex.remove(k.topic_key.as_slice())?.is_some() {
                        add_count(counts, &k.topic, -1)?;
                    }
                    aindex.remove(k.author_key.as_slice())?;
                    Ok((new_in_log, true))
                },
            )
            .during("apply a retraction")?;
        self.touch();
        self.forget_scope_sums();
        Ok(Retracted {
            new_in_log,
            removed: target.filter(|_| removed),
        })
    }

    /// Whether `author` retracted `post`: what decides that a post is
    /// refused forever (only its author's retraction binds it).
    pub fn is_retracted_by(&self, post: &PostId, author: &PublicKey) -> Result<bool, StoreError> {
        self.retractions
            .contains_key(retraction_key(&post.0, &author.0))
            .during("read a retraction")
    }

    /// Every key that retracted `post`, in key order. Several only when
    /// someone signed a retraction of a post that is not theirs (which
    /// binds nothing).
    pub fn retraction_authors(&self, post: &PostId) -> Result<Vec<PublicKey>, StoreError> {
        let mut out = Vec::new();
        for k in self.retractions.scan_prefix(post.as_bytes()).keys() {
            let k = k.during("read a retraction")?;
            match split_retraction_key(&k) {
                Some((_, author)) => out.push(PublicKey(author)),
                None => tracing::warn!(post = %post.short(), "skipping a malformed retraction"),
            }
        }
        Ok(out)
    }

    /// Every stored retraction as (post, retracting key): what start-up
    /// enforces again, so a post whose retraction was logged is gone
    /// whatever a crash left.
    pub fn retractions(&self) -> Result<Vec<(PostId, PublicKey)>, StoreError> {
        let mut out = Vec::new();
        for k in self.retractions.iter().keys() {
            let k = k.during("read the retractions")?;
            match split_retraction_key(&k) {
                Some((post, author)) => out.push((PostId(post), PublicKey(author))),
                None => tracing::warn!("skipping a malformed retraction"),
            }
        }
        Ok(out)
    }

    /// A key that retracted `post`, if any did (the smallest when several
    /// did). To decide whether a post is refused, ask
    /// [`Store::is_retracted_by`] with its author: a bogus retraction by
    /// someone else may sort first.
    pub fn retraction_author(&self, post: &PostId) -> Result<Option<PublicKey>, StoreError> {
        Ok(self.retraction_authors(post)?.into_iter().next())
    }

    // ----- tombstones ------------------------------------------------------

    /// Keeps what remains of a hidden post (the caller's bytes) at its
    /// place in `topic`, replacing an earlier tombstone of the same post.
    /// Prefer [`Store::hide_post`], which also deletes the post atomically.
    pub fn put_tombstone(
        &self,
        topic: &TopicName,
        key: ItemKey,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let tkey = topic_key(topic.as_str().as_bytes(), &key);
        (&self.tombstones, &self.tombstone_ids)
            .transaction(|(tombs, tomb_ids)| -> Tx<()> {
                if let Some(old) = tomb_ids.insert(&key.id[..], tkey.as_slice())? {
                    if old.as_ref() != tkey.as_slice() {
                        tombs.remove(old)?;
                    }
                }
                tombs.insert(tkey.as_slice(), data)?;
                Ok(())
            })
            .during("write a tombstone")?;
        self.touch();
        Ok(())
    }

    /// Removes the tombstone at `key` in `topic`, if any.
    pub fn remove_tombstone(&self, topic: &TopicName, key: ItemKey) -> Result<(), StoreError> {
        let tkey = topic_key(topic.as_str().as_bytes(), &key);
        (&self.tombstones, &self.tombstone_ids)
            .transaction(|(tombs, tomb_ids)| -> Tx<()> {
                tombs.remove(tkey.as_slice())?;
                if tomb_ids
                    .get(key.id)?
                    .is_some_and(|k| k.as_ref() == tkey.as_slice())
                {
                    tomb_ids.remove(&key.id[..])?;
                }
                Ok(())
            })
            .during("remove a tombstone")?;
        self.touch();
        Ok(())
    }

    /// Removes the tombstone of `post` wherever it is (when a post is
    /// unhidden, so it may come back by sync). `Ok(false)`: it had none.
    pub fn remove_tombstone_of(&self, post: &PostId) -> Result<bool, StoreError> {
        let removed = (&self.tombstones, &self.tombstone_ids)
            .transaction(|(tombs, tomb_ids)| -> Tx<bool> {
                let Some(tkey) = tomb_ids.remove(&post.0[..])? else {
                    return Ok(false);
                };
                tombs.remove(tkey)?;
                Ok(true)
            })
            .during("remove a tombstone")?;
        if removed {
            self.touch();
        }
        Ok(removed)
    }

    /// The tombstone bytes of `post`, if it was hidden: lets a reader asking
    /// for a hidden post by id learn why it is gone.
    pub fn tombstone_of(&self, post: &PostId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(tkey) = self
            .tombstone_ids
            .get(post.as_bytes())
            .during("read a tombstone")?
        else {
            return Ok(None);
        };
        Ok(self
            .tombstones
            .get(tkey)
            .during("read a tombstone")?
            .map(|v| v.to_vec()))
    }

    /// Up to `limit` tombstones of `topic`, newest first, strictly before
    /// `before`: shown in a thread in place of the hidden posts.
    pub fn tombstones_page(
        &self,
        topic: &TopicName,
        before: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let t = topic.as_str().as_bytes();
        let end = match before {
            Some(k) => topic_key(t, &k),
            None => topic_end(t),
        };
        let mut out = Vec::new();
        for kv in range(&self.tombstones, topic_prefix(t), end)
            .rev()
            .take(limit)
        {
            let (k, v) = kv.during("read tombstones")?;
            match split_topic_key(&k) {
                Some((_, key)) => out.push((key, v.to_vec())),
                None => tracing::warn!(key = %hex_tail(&k), "skipping a malformed tombstone key"),
            }
        }
        Ok(out)
    }

    /// Rebuilds the post id → tombstone key index from the tombstones.
    fn rebuild_tombstone_ids(&self) -> Result<usize, StoreError> {
        let mut fixed = 0;
        let mut wanted = BTreeMap::new();
        for k in self.tombstones.iter().keys() {
            let k = k.during("read tombstones")?;
            if let Some((_, key)) = split_topic_key(&k) {
                wanted.insert(key.id, k);
            }
        }
        for kv in self.tombstone_ids.iter() {
            let (id, tkey) = kv.during("read tombstones")?;
            let ok = parse_id(&id).and_then(|id| wanted.get(&id)) == Some(&tkey);
            if !ok {
                self.tombstone_ids.remove(&id).during("repair tombstones")?;
                fixed += 1;
            }
        }
        for (id, tkey) in wanted {
            if self
                .tombstone_ids
                .get(id)
                .during("read tombstones")?
                .as_ref()
                != Some(&tkey)
            {
                self.tombstone_ids
                    .insert(&id[..], tkey)
                    .during("repair tombstones")?;
                fixed += 1;
            }
        }
        if fixed > 0 {
            self.touch();
        }
        Ok(fixed)
    }

    // ----- joined topics ---------------------------------------------------

    /// Records that this node joined `topic` (now), so it rejoins after a
    /// restart. Joining again keeps the first time.
    pub fn join_topic(&self, topic: &TopicName) -> Result<(), StoreError> {
        let joined = self
            .topics
            .compare_and_swap(
                topic.as_str().as_bytes(),
                None as Option<&[u8]>,
                Some(&encode_u64(crate::now_ms())[..]),
            )
            .during("record a joined topic")?;
        if joined.is_ok() {
            self.touch();
        }
        Ok(())
    }

    /// Forgets a joined topic (its posts stay until pruned).
    pub fn leave_topic(&self, topic: &TopicName) -> Result<(), StoreError> {
        self.topics
            .remove(topic.as_str().as_bytes())
            .during("forget a joined topic")?;
        self.touch();
        Ok(())
    }

    /// The joined topics, in name order.
    pub fn joined_topics(&self) -> Result<Vec<TopicName>, StoreError> {
        Ok(self
            .joined_topics_with_times()?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    /// The joined topics with when they were joined (ms since the Unix
    /// epoch; `None` if a store from before this was recorded).
    pub fn joined_topics_with_times(&self) -> Result<Vec<(TopicName, Option<u64>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.topics.iter() {
            let (k, v) = kv.during("read joined topics")?;
            match std::str::from_utf8(&k)
                .ok()
                .and_then(|s| TopicName::parse_exact(s).ok())
            {
                Some(t) => out.push((t, parse_u64(&v))),
                None => tracing::warn!(
                    key = %hex_tail(&k),
                    "skipping a stored topic name that does not parse"
                ),
            }
        }
        Ok(out)
    }

    // ----- address book ----------------------------------------------------

    /// Remembers a peer's address-book record (see [`crate::network::peers`], which
    /// bounds what a record holds and how many there are). An oversized
    /// record is refused.
    pub fn put_peer(&self, peer: &[u8], record: &PeerRecord) -> Result<(), StoreError> {
        let bytes = protocol::wire::encode(record);
        if peer.is_empty() || bytes.len() > PEER_VALUE_LIMIT {
            return Ok(());
        }
        self.peers
            .insert(peer, bytes)
            .during("write the address book")?;
        self.touch();
        Ok(())
    }

    /// Forgets a peer and its addresses (unreachable, or cut off).
    pub fn remove_peer(&self, peer: &[u8]) -> Result<(), StoreError> {
        self.peers.remove(peer).during("write the address book")?;
        self.touch();
        Ok(())
    }

    /// The whole address book. Unreadable entries are skipped; entries of
    /// the first layout (a list of addresses) read as never seen.
    pub fn peer_records(&self) -> Result<Vec<(Vec<u8>, PeerRecord)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.peers.iter() {
            let (k, v) = kv.during("read the address book")?;
            let record = protocol::wire::decode::<PeerRecord>(&v, PEER_VALUE_LIMIT)
                .ok()
                .or_else(|| {
                    protocol::wire::decode::<Vec<String>>(&v, PEER_VALUE_LIMIT)
                        .ok()
                        .map(|addrs| PeerRecord {
                            addrs,
                            ..PeerRecord::default()
                        })
                });
            match record {
                Some(r) => out.push((k.to_vec(), r)),
                None => {
                    tracing::warn!(peer = %hex_tail(&k), "skipping unreadable stored addresses")
                }
            }
        }
        Ok(out)
    }

    // ----- mutes and named values ------------------------------------------

    /// Mutes an author for this node alone (their posts stay stored and
    /// relayed; this node's reader just does not show them).
    pub fn mute(&self, author: &PublicKey) -> Result<(), StoreError> {
        self.mutes
            .insert(author.as_bytes(), &[][..])
            .during("write a mute")?;
        self.touch();
        Ok(())
    }

    /// Unmutes an author.
    pub fn unmute(&self, author: &PublicKey) -> Result<(), StoreError> {
        self.mutes
            .remove(author.as_bytes())
            .during("write a mute")?;
        self.touch();
        Ok(())
    }

    /// Whether an author is muted.
    pub fn is_muted(&self, author: &PublicKey) -> Result<bool, StoreError> {
        self.mutes
            .contains_key(author.as_bytes())
            .during("read mutes")
    }

    /// Every muted author.
    pub fn mutes(&self) -> Result<BTreeSet<PublicKey>, StoreError> {
        let mut out = BTreeSet::new();
        for k in self.mutes.iter().keys() {
            let k = k.during("read mutes")?;
            match parse_id(&k) {
                Some(b) => {
                    out.insert(PublicKey(b));
                }
                None => tracing::warn!(key = %hex_tail(&k), "skipping a malformed mute"),
            }
        }
        Ok(out)
    }

    /// A small named value (the community manifest, the moderation
    /// sequence counter, ...): opaque bytes the caller encodes.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .get(name)
            .during("read a setting")?
            .map(|v| v.to_vec()))
    }

    /// Sets a small named value.
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name, value).during("write a setting")?;
        self.touch();
        Ok(())
    }

    /// Removes a small named value (nothing if it was not set).
    pub fn remove_meta(&self, name: &str) -> Result<(), StoreError> {
        self.meta.remove(name).during("write a setting")?;
        self.touch();
        Ok(())
    }

    // ----- sync ------------------------------------------------------------

    /// The index tree of a sync scope and the bounds of `[from, to)` in it.
    fn scope_range(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
    ) -> (&sled::Tree, Vec<u8>, Vec<u8>) {
        match scope {
            SyncScope::CommunityLog => (
                &self.log,
                item_key_bytes(from).to_vec(),
                item_key_bytes(to).to_vec(),
            ),
            SyncScope::Topic(t) => {
                let t = t.as_str().as_bytes();
                (&self.topic_index, topic_key(t, from), topic_key(t, to))
            }
        }
    }

    /// The item key in an index key of `scope`.
    fn scope_key(scope: &SyncScope, k: &[u8]) -> Option<ItemKey> {
        match scope {
            SyncScope::CommunityLog => parse_item_key(k),
            SyncScope::Topic(_) => split_topic_key(k).map(|(_, key)| key),
        }
    }

    /// The stored bytes of the item at `key` in `scope`. A post is only
    /// served under the topic it was written in.
    fn item_bytes(&self, scope: &SyncScope, key: &ItemKey) -> Result<Option<Vec<u8>>, StoreError> {
        match scope {
            SyncScope::CommunityLog => Ok(self
                .log
                .get(item_key_bytes(key))
                .during("read the community log")?
                .map(|v| v.to_vec())),
            SyncScope::Topic(t) => {
                let indexed = self
                    .topic_index
                    .contains_key(topic_key(t.as_str().as_bytes(), key))
                    .during("read a topic")?;
                if !indexed {
                    return Ok(None);
                }
                let bytes = self.posts.get(key.id).during("read a post")?;
                if bytes.is_none() {
                    tracing::warn!(post = %PostId(key.id).short(), "a topic index entry has no post");
                }
                Ok(bytes.map(|v| v.to_vec()))
            }
        }
    }

    /// The accumulator of everything in `scope`: from memory once computed
    /// (one scan of the scope's keys the first time, and after a deletion
    /// or a log write).
    pub fn scope_sum(&self, scope: &SyncScope) -> Result<Accumulator, StoreError> {
        if let Some(acc) = self
            .scope_sums
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
        {
            return Ok(*acc);
        }
        let mut acc = Accumulator::EMPTY;
        self.scan_keys(scope, &ItemKey::MIN, &ItemKey::MAX, &mut |k| {
            acc.add(&k.id);
            true
        })?;
        self.scope_sums
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(scope.clone(), acc);
        Ok(acc)
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

    /// Calls `f` on each key of `scope` in `[from, to)`, ascending, until it
    /// returns false: the set side of reconciliation. Reads only the index
    /// (topics) or the log's keys, never item bytes.
    pub fn scan_keys(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
        f: &mut dyn FnMut(&ItemKey) -> bool,
    ) -> Result<(), StoreError> {
        let (tree, start, end) = self.scope_range(scope, from, to);
        for k in range(tree, start, end).keys() {
            let k = k.during("read items to sync")?;
            match Store::scope_key(scope, &k) {
                Some(key) => {
                    if !f(&key) {
                        break;
                    }
                }
                None => tracing::warn!(key = %hex_tail(&k), "skipping a malformed item key"),
            }
        }
        Ok(())
    }

    /// The stored items (encoded `Message` bytes) of `scope` in
    /// `[from, to)`, in key order: at most `max_items`, stopping before an
    /// item that would take the total past `max_bytes`, but at least one
    /// item if there is any (so a large item can never stall a sync).
    pub fn items_in(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        if max_items == 0 {
            return Ok(out);
        }
        let (tree, start, end) = self.scope_range(scope, from, to);
        let mut bytes = 0usize;
        for kv in range(tree, start, end) {
            let (k, v) = kv.during("read items to sync")?;
            let Some(key) = Store::scope_key(scope, &k) else {
                tracing::warn!(key = %hex_tail(&k), "skipping a malformed item key");
                continue;
            };
            let item = match scope {
                SyncScope::CommunityLog => Some(v.to_vec()),
                SyncScope::Topic(_) => {
                    let p = self.posts.get(key.id).during("read a post")?;
                    if p.is_none() {
                        tracing::warn!(post = %PostId(key.id).short(), "a topic index entry has no post");
                    }
                    p.map(|p| p.to_vec())
                }
            };
            let Some(item) = item else { continue };
            if !out.is_empty() && bytes.saturating_add(item.len()) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(item.len());
            out.push((key, item));
            if out.len() >= max_items {
                break;
            }
        }
        Ok(out)
    }

    /// The stored items of `scope` with these keys, in the order asked,
    /// skipping keys not held (or held in another topic).
    pub fn items_by_keys(
        &self,
        scope: &SyncScope,
        keys: &[ItemKey],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = self.item_bytes(scope, k)? {
                out.push(v);
            }
        }
        Ok(out)
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
            db: self.db.clone(),
            dirty: Arc::clone(&self.dirty),
        }
    }

    /// Whether something was written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Bytes the store takes on disk (for status and for limits).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().during("measure its size on disk")
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    // ----- integrity -------------------------------------------------------

    /// Walks every post and index and lists each inconsistency: an index
    /// entry without its post (or pointing at the wrong place), a post
    /// without its entries or that does not decode, a count that disagrees,
    /// a retracted post still stored, a broken tombstone link. Empty means
    /// consistent. Reads everything: for tests, start-up checks and
    /// diagnostics, not the hot path. Problems name ids, never content.
    pub fn check_integrity(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let mut per_topic: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for kv in self.posts.iter() {
            let (k, v) = kv.during("read posts")?;
            let Some(id) = parse_id(&k).map(PostId) else {
                problems.push(format!("posts: malformed key {}", hex_tail(&k)));
                continue;
            };
            let Some(p) = decode_post(&v) else {
                problems.push(format!("post {} does not decode", id.short()));
                continue;
            };
            if p.id() != id {
                problems.push(format!("post {} is stored under another id", id.short()));
            }
            let pk = PostKeys::of(&p, &id);
            if !self
                .topic_index
                .contains_key(&pk.topic_key)
                .during("read the topic index")?
            {
                problems.push(format!("post {} has no topic index entry", id.short()));
            }
            match self
                .author_index
                .get(&pk.author_key)
                .during("read the author index")?
            {
                None => problems.push(format!("post {} has no author index entry", id.short())),
                Some(t) if t.as_ref() != pk.topic.as_slice() => problems.push(format!(
                    "post {}'s author index entry names another topic",
                    id.short()
                )),
                Some(_) => {}
            }
            if self.is_retracted_by(&id, &p.content.author)? {
                problems.push(format!("post {} was retracted but is stored", id.short()));
            }
            let n = per_topic.entry(pk.topic).or_default();
            *n = n.saturating_add(1);
        }
        let mut indexed: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for k in self.topic_index.iter().keys() {
            let k = k.during("read the topic index")?;
            let Some((topic, key)) = split_topic_key(&k) else {
                problems.push(format!("topic index: malformed key {}", hex_tail(&k)));
                continue;
            };
            let id = PostId(key.id);
            let n = indexed.entry(topic.to_vec()).or_default();
            *n = n.saturating_add(1);
            match self.posts.get(key.id).during("read posts")? {
                None => problems.push(format!("topic index entry for {} has no post", id.short())),
                Some(v) => {
                    if decode_post(&v)
                        .is_some_and(|p| PostKeys::of(&p, &id).topic_key != k.as_ref())
                    {
                        problems.push(format!(
                            "topic index entry for {} does not match its post",
                            id.short()
                        ));
                    }
                }
            }
        }
        for k in self.author_index.iter().keys() {
            let k = k.during("read the author index")?;
            let Some((_, key)) = split_author_key(&k) else {
                problems.push(format!("author index: malformed key {}", hex_tail(&k)));
                continue;
            };
            let id = PostId(key.id);
            match self.posts.get(key.id).during("read posts")? {
                None => problems.push(format!("author index entry for {} has no post", id.short())),
                Some(v) => {
                    if decode_post(&v)
                        .is_some_and(|p| PostKeys::of(&p, &id).author_key != k.as_ref())
                    {
                        problems.push(format!(
                            "author index entry for {} does not match its post",
                            id.short()
                        ));
                    }
                }
            }
        }
        let mut counted: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for kv in self.counts.iter() {
            let (topic, v) = kv.during("read topic counts")?;
            match parse_u64(&v) {
                Some(n) => {
                    counted.insert(topic.to_vec(), n);
                }
                None => problems.push(format!(
                    "topic {}: the count does not decode",
                    String::from_utf8_lossy(&topic)
                )),
            }
        }
        let topics: BTreeSet<&Vec<u8>> = per_topic
            .keys()
            .chain(indexed.keys())
            .chain(counted.keys())
            .collect();
        for topic in topics {
            let posts = per_topic.get(topic).copied().unwrap_or(0);
            let index = indexed.get(topic).copied().unwrap_or(0);
            let count = counted.get(topic).copied().unwrap_or(0);
            if posts != count || index != count {
                problems.push(format!(
                    "topic {} counts {count} posts but holds {posts} (index: {index})",
                    String::from_utf8_lossy(topic)
                ));
            }
        }
        for kv in self.log.iter() {
            let (k, v) = kv.during("read the community log")?;
            if parse_item_key(&k).is_none() {
                problems.push(format!("community log: malformed key {}", hex_tail(&k)));
            } else if Message::decode(&v).is_err() {
                problems.push(format!(
                    "community log item {} does not decode",
                    hex_tail(&k)
                ));
            }
        }
        for k in self.retractions.iter().keys() {
            let k = k.during("read retractions")?;
            if split_retraction_key(&k).is_none() {
                problems.push(format!("retraction {} is malformed", hex_tail(&k)));
            }
        }
        for kv in self.tombstones.iter() {
            let (k, _) = kv.during("read tombstones")?;
            let Some((_, key)) = split_topic_key(&k) else {
                problems.push(format!("tombstones: malformed key {}", hex_tail(&k)));
                continue;
            };
            let linked = self.tombstone_ids.get(key.id).during("read tombstones")?;
            if linked.as_deref() != Some(k.as_ref()) {
                problems.push(format!(
                    "tombstone of {} is not linked from its id",
                    PostId(key.id).short()
                ));
            }
        }
        for kv in self.tombstone_ids.iter() {
            let (id, tkey) = kv.during("read tombstones")?;
            if !self
                .tombstones
                .contains_key(&tkey)
                .during("read tombstones")?
            {
                problems.push(format!(
                    "tombstone link {} points at no tombstone",
                    hex_tail(&id)
                ));
            }
        }
        Ok(problems)
    }

    /// Restores what [`Store::check_integrity`] checks, should a bug or a
    /// damaged disk ever break it: deletes posts that do not decode or were
    /// retracted, drops index entries without a matching post, adds missing
    /// ones, recounts every topic and relinks tombstones. Each step is
    /// idempotent, so an interrupted repair is finished by running it
    /// again. Returns how many entries it changed. Reads everything: run it
    /// at start-up, never on the hot path.
    pub fn repair(&self) -> Result<usize, StoreError> {
        let mut fixed = 0usize;
        // 1. Posts: drop the unreadable and the retracted; re-add index
        //    entries that are missing.
        let mut keep: BTreeMap<[u8; ID_LEN], PostKeys> = BTreeMap::new();
        for kv in self.posts.iter() {
            let (k, v) = kv.during("read posts")?;
            let post = parse_id(&k).and_then(|id| {
                let p = decode_post(&v)?;
                (p.id().0 == id).then_some((PostId(id), p))
            });
            let Some((id, p)) = post else {
                tracing::warn!(key = %hex_tail(&k), "repair: deleting an unreadable post");
                self.posts.remove(&k).during("repair posts")?;
                fixed += 1;
                continue;
            };
            if self.is_retracted_by(&id, &p.content.author)? {
                tracing::warn!(post = %id.short(), "repair: deleting a retracted post");
                self.posts.remove(&k).during("repair posts")?;
                fixed += 1;
                continue;
            }
            let pk = PostKeys::of(&p, &id);
            if self
                .topic_index
                .insert(pk.topic_key.as_slice(), &[][..])
                .during("repair the topic index")?
                .is_none()
            {
                fixed += 1;
            }
            if self
                .author_index
                .insert(pk.author_key.as_slice(), pk.topic.as_slice())
                .during("repair the author index")?
                .as_deref()
                != Some(pk.topic.as_slice())
            {
                fixed += 1;
            }
            keep.insert(id.0, pk);
        }
        // 2. Index entries must be exactly the kept posts' entries.
        let mut per_topic: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for k in self.topic_index.iter().keys() {
            let k = k.during("read the topic index")?;
            let ok = split_topic_key(&k)
                .and_then(|(_, key)| keep.get(&key.id))
                .is_some_and(|pk| pk.topic_key == k.as_ref());
            if ok {
                if let Some((topic, _)) = split_topic_key(&k) {
                    let n = per_topic.entry(topic.to_vec()).or_default();
                    *n = n.saturating_add(1);
                }
            } else {
                self.topic_index
                    .remove(&k)
                    .during("repair the topic index")?;
                fixed += 1;
            }
        }
        for k in self.author_index.iter().keys() {
            let k = k.during("read the author index")?;
            let ok = split_author_key(&k)
                .and_then(|(_, key)| keep.get(&key.id))
                .is_some_and(|pk| pk.author_key == k.as_ref());
            if !ok {
                self.author_index
                    .remove(&k)
                    .during("repair the author index")?;
                fixed += 1;
            }
        }
        // 3. Counts from the index.
        for topic in self.counts.iter().keys() {
            let topic = topic.during("read topic counts")?;
            if !per_topic.contains_key(topic.as_ref()) {
                self.counts.remove(&topic).during("repair topic counts")?;
                fixed += 1;
            }
        }
        for (topic, n) in per_topic {
            let old = self
                .counts
                .get(topic.as_slice())
                .during("read topic counts")?;
            if old.as_deref().and_then(parse_u64) != Some(n) {
                self.counts
                    .insert(topic.as_slice(), &encode_u64(n)[..])
                    .during("repair topic counts")?;
                fixed += 1;
            }
        }
        // 4. Tombstones.
        fixed += self.rebuild_tombstone_ids()?;
        if fixed > 0 {
            self.touch();
            self.forget_scope_sums();
            tracing::warn!(fixed, "repaired the store");
        }
        Ok(fixed)
    }
}
