//! The store: the one place that touches sled (0.34, no longer maintained
//! upstream; no sled type crosses this file, so it can be swapped here).
//!
//! Trees:
//! - `posts`: post id → the post's encoded `Message::Post` (wire bytes, so
//!   sync serves them without re-encoding);
//! - `topic_index`: topic ‖ 0x00 ‖ created_at (BE) ‖ post id → ∅ (newest
//!   first or a page is a range scan);
//! - `author_index`: author ‖ created_at (BE) ‖ post id → topic;
//! - `counts`: topic → u64 post count, kept in the same transaction;
//! - `log`: created_at (BE) ‖ id → encoded `Message` (moderation actions,
//!   retractions, sealed reports: the community log);
//! - `retractions`: post id → author key;
//! - `tombstones`: topic ‖ 0x00 ‖ created_at ‖ post id → tombstone bytes;
//! - `topics`: joined topic → joined at; `peers`: peer id → addresses;
//!   `mutes`: author → ∅; `meta`: name → bytes.
//!
//! A post and its index entries and count are written in one transaction:
//! after a crash there is never an index entry without its post or the
//! reverse.

use std::collections::BTreeSet;
use std::path::Path;

use protocol::sync::{ItemKey, SyncScope};
use protocol::{Message, PostId, PublicKey, Scope, SignedPost, TopicName, VerifiedPost};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

/// Most addresses remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 8;
/// How often sled flushes on its own, in ms (the event loop also flushes
/// after every local publish and on a short interval).
const SLED_FLUSH_EVERY_MS: u64 = 100;

/// Why the store failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error("the store at {0} is in use by another mutual node (stop it first, or use another --data-dir)")]
    InUse(String),
    /// sled failed.
    #[error("store error: {0}")]
    Backend(String),
    /// Stored bytes did not decode.
    #[error("corrupt store entry: {0}")]
    Corrupt(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

/// A peer id (bytes) and the addresses remembered for it.
pub type PeerAddrs = (Vec<u8>, Vec<String>);

/// The node's local database.
pub struct Store {
    db: sled::Db,
    posts: sled::Tree,
    topic_index: sled::Tree,
    author_index: sled::Tree,
    counts: sled::Tree,
    log: sled::Tree,
    retractions: sled::Tree,
    tombstones: sled::Tree,
    topics: sled::Tree,
    peers: sled::Tree,
    mutes: sled::Tree,
    meta: sled::Tree,
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn topic_key(topic: &TopicName, key: &ItemKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(topic.as_str().len() + 41);
    k.extend_from_slice(topic.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(&be(key.created_at));
    k.extend_from_slice(&key.id);
    k
}

fn topic_prefix(topic: &TopicName) -> Vec<u8> {
    let mut k = topic.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

fn author_key(author: &PublicKey, key: &ItemKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(72);
    k.extend_from_slice(author.as_bytes());
    k.extend_from_slice(&be(key.created_at));
    k.extend_from_slice(&key.id);
    k
}

fn log_key(key: &ItemKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.extend_from_slice(&be(key.created_at));
    k.extend_from_slice(&key.id);
    k
}

/// Parses the trailing `created_at ‖ id` (40 bytes) of an index key.
fn item_key_suffix(k: &[u8]) -> Option<ItemKey> {
    let tail = k.get(k.len().checked_sub(40)?..)?;
    let (at, id) = tail.split_at(8);
    Some(ItemKey {
        created_at: u64::from_be_bytes(at.try_into().ok()?),
        id: id.try_into().ok()?,
    })
}

fn decode_post(bytes: &[u8]) -> Option<SignedPost> {
    match Message::decode(bytes) {
        Ok(Message::Post(p)) => Some(p),
        _ => None,
    }
}

fn count_of(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(SLED_FLUSH_EVERY_MS))
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::InUse(dir.display().to_string())
                }
                other => StoreError::from(other),
            })?;
        Store::from_db(db)
    }

    /// A store in memory, for tests.
    pub fn temporary() -> Result<Store, StoreError> {
        Store::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Store, StoreError> {
        Ok(Store {
            posts: db.open_tree("posts")?,
            topic_index: db.open_tree("topic_index")?,
            author_index: db.open_tree("author_index")?,
            counts: db.open_tree("counts")?,
            log: db.open_tree("log")?,
            retractions: db.open_tree("retractions")?,
            tombstones: db.open_tree("tombstones")?,
            topics: db.open_tree("topics")?,
            peers: db.open_tree("peers")?,
            mutes: db.open_tree("mutes")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    /// Stores a verified post with its indexes, atomically. `Ok(false)`:
    /// already stored, or retracted by its author.
    pub fn insert_post(&self, post: &VerifiedPost) -> Result<bool, StoreError> {
        let id = post.id();
        if self.posts.contains_key(id.as_bytes())? {
            return Ok(false);
        }
        if self.retraction_author(&id)? == Some(post.author) {
            return Ok(false);
        }
        let key = ItemKey {
            created_at: post.created_at,
            id: id.0,
        };
        let bytes = Message::Post(post.signed().clone()).encode();
        let tkey = topic_key(&post.topic, &key);
        let akey = author_key(&post.author, &key);
        let topic = post.topic.as_str().as_bytes().to_vec();
        let inserted = (
            &self.posts,
            &self.topic_index,
            &self.author_index,
            &self.counts,
        )
            .transaction(|(posts, tindex, aindex, counts)| -> TxResult<bool> {
                if posts.get(id.as_bytes())?.is_some() {
                    return Ok(false);
                }
                posts.insert(id.as_bytes(), bytes.as_slice())?;
                tindex.insert(tkey.as_slice(), &[] as &[u8])?;
                aindex.insert(akey.as_slice(), topic.as_slice())?;
                let n = count_of(counts.get(topic.as_slice())?);
                counts.insert(topic.as_slice(), &be(n + 1))?;
                Ok(true)
            })?;
        Ok(inserted)
    }

    /// A stored post.
    pub fn get_post(&self, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        Ok(self.posts.get(id.as_bytes())?.and_then(|b| {
            let p = decode_post(&b);
            if p.is_none() {
                tracing::warn!(post = %id.short(), "skipping a stored post that does not decode");
            }
            p
        }))
    }

    /// Whether a post is stored.
    pub fn contains_post(&self, id: &PostId) -> Result<bool, StoreError> {
        Ok(self.posts.contains_key(id.as_bytes())?)
    }

    /// Ids of stored posts starting with `prefix`, at most `limit`.
    pub fn post_ids_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<PostId>, StoreError> {
        let mut out = Vec::new();
        for kv in self.posts.scan_prefix(prefix).keys().take(limit) {
            let k = kv?;
            if let Ok(id) = <[u8; 32]>::try_from(k.as_ref()) {
                out.push(PostId(id));
            }
        }
        Ok(out)
    }

    /// Posts of `topic`, newest first, strictly before `before`.
    pub fn topic_page(
        &self,
        topic: &TopicName,
        before: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let start = topic_prefix(topic);
        let end = match before {
            Some(k) => topic_key(topic, &k),
            None => {
                let mut e = topic.as_str().as_bytes().to_vec();
                e.push(1);
                e
            }
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for kv in self.topic_index.range(start..end).keys().rev() {
            if out.len() >= limit {
                break;
            }
            let k = kv?;
            let Some(key) = item_key_suffix(&k) else {
                continue;
            };
            if let Some(p) = self.get_post(&PostId(key.id))? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Exact post count of a topic (O(1)).
    pub fn count_topic(&self, topic: &TopicName) -> Result<u64, StoreError> {
        Ok(count_of(self.counts.get(topic.as_str().as_bytes())?))
    }

    /// Posts stored in all topics.
    pub fn post_count(&self) -> usize {
        self.posts.len()
    }

    /// Deletes a post and its index entries, atomically.
    pub fn delete_post(&self, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        let Some(post) = self.get_post(id)? else {
            if self.posts.remove(id.as_bytes())?.is_some() {
                tracing::warn!(post = %id.short(), "removed an undecodable post");
            }
            return Ok(None);
        };
        let key = ItemKey {
            created_at: post.content.created_at,
            id: id.0,
        };
        let tkey = topic_key(&post.content.topic, &key);
        let akey = author_key(&post.content.author, &key);
        let topic = post.content.topic.as_str().as_bytes().to_vec();
        let removed = (
            &self.posts,
            &self.topic_index,
            &self.author_index,
            &self.counts,
        )
            .transaction(|(posts, tindex, aindex, counts)| -> TxResult<bool> {
                if posts.remove(id.as_bytes())?.is_none() {
                    return Ok(false);
                }
                tindex.remove(tkey.as_slice())?;
                aindex.remove(akey.as_slice())?;
                let n = count_of(counts.get(topic.as_slice())?);
                counts.insert(topic.as_slice(), &be(n.saturating_sub(1)))?;
                Ok(true)
            })?;
        Ok(removed.then_some(post))
    }

    /// How many posts of `author` were created in `[from_ms, to_ms]`,
    /// counting at most `limit`.
    pub fn count_author_between(
        &self,
        author: &PublicKey,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let lo = author_key(
            author,
            &ItemKey {
                created_at: from_ms,
                id: [0; 32],
            },
        );
        let hi = author_key(
            author,
            &ItemKey {
                created_at: to_ms,
                id: [0xff; 32],
            },
        );
        let mut n = 0;
        for k in self.author_index.range(lo..=hi).keys().take(limit) {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes every post of `author` in `scope`; returns their ids.
    pub fn delete_author_posts(
        &self,
        author: &PublicKey,
        scope: &Scope,
    ) -> Result<Vec<PostId>, StoreError> {
        let mut victims = Vec::new();
        for kv in self.author_index.scan_prefix(author.as_bytes()) {
            let (k, topic) = kv?;
            let Some(key) = item_key_suffix(&k) else {
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
            if self.delete_post(&id)?.is_some() {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Adds an item to the community log. `Ok(false)` if already there.
    pub fn insert_log(&self, key: ItemKey, message: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .log
            .compare_and_swap(log_key(&key), None as Option<&[u8]>, Some(message))?
            .is_ok())
    }

    /// Whether the community log holds an item.
    pub fn contains_log(&self, key: &ItemKey) -> Result<bool, StoreError> {
        Ok(self.log.contains_key(log_key(key))?)
    }

    /// The whole community log, oldest first.
    pub fn log_items(&self) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.log.iter() {
            let (k, v) = kv?;
            if let Some(key) = item_key_suffix(&k) {
                out.push((key, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Remembers that `author` retracted `post`.
    pub fn add_retraction(&self, post: &PostId, author: &PublicKey) -> Result<(), StoreError> {
        self.retractions
            .insert(post.as_bytes(), author.as_bytes())?;
        Ok(())
    }

    /// Who retracted `post`, if anyone did.
    pub fn retraction_author(&self, post: &PostId) -> Result<Option<PublicKey>, StoreError> {
        Ok(self
            .retractions
            .get(post.as_bytes())?
            .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok())
            .map(PublicKey))
    }

    /// Keeps what remains of a hidden post.
    pub fn put_tombstone(
        &self,
        topic: &TopicName,
        key: ItemKey,
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.tombstones.insert(topic_key(topic, &key), data)?;
        Ok(())
    }

    /// Removes a tombstone.
    pub fn remove_tombstone(&self, topic: &TopicName, key: ItemKey) -> Result<(), StoreError> {
        self.tombstones.remove(topic_key(topic, &key))?;
        Ok(())
    }

    /// Removes the tombstone of a post, wherever it is (tombstones are few).
    pub fn remove_tombstone_of(&self, post: &PostId) -> Result<bool, StoreError> {
        for k in self.tombstones.iter().keys() {
            let k = k?;
            if item_key_suffix(&k).is_some_and(|key| key.id == post.0) {
                self.tombstones.remove(k)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Tombstones of `topic`, newest first.
    pub fn tombstones_page(
        &self,
        topic: &TopicName,
        before: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let start = topic_prefix(topic);
        let end = match before {
            Some(k) => topic_key(topic, &k),
            None => {
                let mut e = topic.as_str().as_bytes().to_vec();
                e.push(1);
                e
            }
        };
        let mut out = Vec::new();
        for kv in self.tombstones.range(start..end).rev().take(limit) {
            let (k, v) = kv?;
            if let Some(key) = item_key_suffix(&k) {
                out.push((key, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Records a joined topic.
    pub fn join_topic(&self, topic: &TopicName) -> Result<(), StoreError> {
        self.topics
            .insert(topic.as_str().as_bytes(), &[] as &[u8])?;
        Ok(())
    }

    /// Forgets a joined topic.
    pub fn leave_topic(&self, topic: &TopicName) -> Result<(), StoreError> {
        self.topics.remove(topic.as_str().as_bytes())?;
        Ok(())
    }

    /// Joined topics.
    pub fn joined_topics(&self) -> Result<Vec<TopicName>, StoreError> {
        let mut out = Vec::new();
        for k in self.topics.iter().keys() {
            let k = k?;
            match std::str::from_utf8(&k)
                .ok()
                .and_then(|s| TopicName::parse_exact(s).ok())
            {
                Some(t) => out.push(t),
                None => tracing::warn!("skipping a stored topic name that does not parse"),
            }
        }
        Ok(out)
    }

    /// Remembers an address of a peer (at most a few per peer).
    pub fn add_peer_addr(&self, peer: &[u8], addr: &str) -> Result<(), StoreError> {
        let mut addrs: Vec<String> = self
            .peers
            .get(peer)?
            .and_then(|v| protocol::wire::decode(&v, 4096).ok())
            .unwrap_or_default();
        if addrs.iter().any(|a| a == addr) {
            return Ok(());
        }
        addrs.insert(0, addr.to_string());
        addrs.truncate(MAX_ADDRS_PER_PEER);
        self.peers.insert(peer, protocol::wire::encode(&addrs))?;
        Ok(())
    }

    /// The address book.
    pub fn peer_addrs(&self) -> Result<Vec<PeerAddrs>, StoreError> {
        let mut out = Vec::new();
        for kv in self.peers.iter() {
            let (k, v) = kv?;
            if let Ok(addrs) = protocol::wire::decode::<Vec<String>>(&v, 4096) {
                out.push((k.to_vec(), addrs));
            }
        }
        Ok(out)
    }

    /// Mutes an author for this node alone.
    pub fn mute(&self, author: &PublicKey) -> Result<(), StoreError> {
        self.mutes.insert(author.as_bytes(), &[] as &[u8])?;
        Ok(())
    }

    /// Unmutes an author.
    pub fn unmute(&self, author: &PublicKey) -> Result<(), StoreError> {
        self.mutes.remove(author.as_bytes())?;
        Ok(())
    }

    /// Muted authors.
    pub fn mutes(&self) -> Result<BTreeSet<PublicKey>, StoreError> {
        let mut out = BTreeSet::new();
        for k in self.mutes.iter().keys() {
            if let Ok(b) = <[u8; 32]>::try_from(k?.as_ref()) {
                out.insert(PublicKey(b));
            }
        }
        Ok(out)
    }

    /// A named small value.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name)?.map(|v| v.to_vec()))
    }

    /// Sets a named small value.
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name, value)?;
        Ok(())
    }

    /// Visits the keys of `scope` in `[from, to)` in ascending order until
    /// `f` returns false.
    pub fn scan_keys(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
        f: &mut dyn FnMut(&ItemKey) -> bool,
    ) -> Result<(), StoreError> {
        let (tree, start, end) = self.scope_range(scope, from, to);
        for k in tree.range(start..end).keys() {
            let k = k?;
            if let Some(key) = item_key_suffix(&k) {
                if !f(&key) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn scope_range(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
    ) -> (&sled::Tree, Vec<u8>, Vec<u8>) {
        match scope {
            SyncScope::CommunityLog => (&self.log, log_key(from), log_key(to)),
            SyncScope::Topic(t) => (&self.topic_index, topic_key(t, from), topic_key(t, to)),
        }
    }

    fn item_bytes(&self, scope: &SyncScope, key: &ItemKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(match scope {
            SyncScope::CommunityLog => self.log.get(log_key(key))?.map(|v| v.to_vec()),
            SyncScope::Topic(_) => self.posts.get(key.id)?.map(|v| v.to_vec()),
        })
    }

    /// The stored items of `scope` in `[from, to)`, in key order, bounded
    /// in count and bytes (at least one item if any).
    pub fn items_in(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let (tree, start, end) = self.scope_range(scope, from, to);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for k in tree.range(start..end).keys() {
            if out.len() >= max_items {
                break;
            }
            let k = k?;
            let Some(key) = item_key_suffix(&k) else {
                continue;
            };
            if let Some(v) = self.item_bytes(scope, &key)? {
                if !out.is_empty() && bytes + v.len() > max_bytes {
                    break;
                }
                bytes += v.len();
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// The stored items of `scope` with these keys (missing ones skipped).
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

    /// Writes everything to disk before returning.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Walks every index and reports each entry without its post, each post
    /// without its entries, and counts that disagree. Empty: consistent.
    pub fn check_integrity(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let mut per_topic: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
        for kv in self.posts.iter() {
            let (k, v) = kv?;
            let Some(p) = decode_post(&v) else {
                problems.push(format!("post {} does not decode", hex_short(&k)));
                continue;
            };
            let key = ItemKey {
                created_at: p.content.created_at,
                id: p.id().0,
            };
            if k.as_ref() != key.id.as_slice() {
                problems.push(format!("post {} is stored under another id", hex_short(&k)));
            }
            if !self
                .topic_index
                .contains_key(topic_key(&p.content.topic, &key))?
            {
                problems.push(format!("post {} has no topic index entry", hex_short(&k)));
            }
            if !self
                .author_index
                .contains_key(author_key(&p.content.author, &key))?
            {
                problems.push(format!("post {} has no author index entry", hex_short(&k)));
            }
            *per_topic
                .entry(p.content.topic.as_str().as_bytes().to_vec())
                .or_default() += 1;
        }
        for k in self.topic_index.iter().keys() {
            let k = k?;
            match item_key_suffix(&k) {
                Some(key) if self.posts.contains_key(key.id)? => {}
                _ => problems.push(format!("topic index entry {} has no post", hex_short(&k))),
            }
        }
        for k in self.author_index.iter().keys() {
            let k = k?;
            match item_key_suffix(&k) {
                Some(key) if self.posts.contains_key(key.id)? => {}
                _ => problems.push(format!("author index entry {} has no post", hex_short(&k))),
            }
        }
        for kv in self.counts.iter() {
            let (topic, v) = kv?;
            let stored = count_of(Some(v));
            let actual = per_topic.get(topic.as_ref()).copied().unwrap_or(0);
            if stored != actual {
                problems.push(format!(
                    "topic {} counts {stored} posts but holds {actual}",
                    String::from_utf8_lossy(&topic)
                ));
            }
        }
        Ok(problems)
    }
}

fn hex_short(bytes: &[u8]) -> String {
    bytes
        .iter()
        .rev()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::post::Draft;
    use protocol::{CommunityId, Identity, Post, ValidationContext};

    fn post(who: &Identity, topic: &str, body: &str, at: u64) -> VerifiedPost {
        let community = CommunityId::of_bytes(b"c");
        Post::write(
            who,
            community,
            TopicName::parse(topic).unwrap(),
            Draft {
                body: body.into(),
                ..Draft::default()
            },
            at,
        )
        .unwrap()
        .verify(&ValidationContext {
            community,
            now_ms: at,
        })
        .unwrap()
    }

    #[test]
    fn insert_is_idempotent_and_pages_newest_first() {
        let s = Store::temporary().unwrap();
        let me = Identity::generate(None);
        let t = TopicName::parse("t").unwrap();
        for i in 0..10 {
            assert!(s
                .insert_post(&post(&me, "t", &format!("p{i}"), 1000 + i))
                .unwrap());
        }
        assert!(!s.insert_post(&post(&me, "t", "p3", 1003)).unwrap());
        assert_eq!(s.count_topic(&t).unwrap(), 10);
        let page = s.topic_page(&t, None, 4).unwrap();
        let bodies: Vec<&str> = page.iter().map(|p| p.content.body.as_str()).collect();
        assert_eq!(bodies, ["p9", "p8", "p7", "p6"]);
        let last = page.last().unwrap();
        let next = s
            .topic_page(
                &t,
                Some(ItemKey {
                    created_at: last.content.created_at,
                    id: last.id().0,
                }),
                4,
            )
            .unwrap();
        assert_eq!(next[0].content.body, "p5");
        assert!(s
            .topic_page(&TopicName::parse("other").unwrap(), None, 10)
            .unwrap()
            .is_empty());
        assert!(s.check_integrity().unwrap().is_empty());
    }

    #[test]
    fn deleting_by_author_and_scope_keeps_indexes_consistent() {
        let s = Store::temporary().unwrap();
        let troll = Identity::generate(None);
        let kind = Identity::generate(None);
        for i in 0..5 {
            s.insert_post(&post(&troll, "a", &format!("x{i}"), 10 + i))
                .unwrap();
            s.insert_post(&post(&troll, "b", &format!("y{i}"), 10 + i))
                .unwrap();
            s.insert_post(&post(&kind, "a", &format!("z{i}"), 10 + i))
                .unwrap();
        }
        let a = TopicName::parse("a").unwrap();
        let b = TopicName::parse("b").unwrap();
        let gone = s
            .delete_author_posts(&troll.public(), &Scope::Topic(a.clone()))
            .unwrap();
        assert_eq!(gone.len(), 5);
        assert_eq!(s.count_topic(&a).unwrap(), 5);
        assert_eq!(s.count_topic(&b).unwrap(), 5);
        s.delete_author_posts(&troll.public(), &Scope::Community)
            .unwrap();
        assert_eq!(s.count_topic(&b).unwrap(), 0);
        assert!(
            s.check_integrity().unwrap().is_empty(),
            "{:?}",
            s.check_integrity()
        );
    }

    #[test]
    fn reopening_gives_back_everything_and_retractions_hold() {
        let dir = tempfile::tempdir().unwrap();
        let me = Identity::generate(None);
        let p = post(&me, "t", "hello", 5);
        let gone = post(&me, "t", "oops", 6);
        {
            let s = Store::open(dir.path()).unwrap();
            s.insert_post(&p).unwrap();
            s.join_topic(&TopicName::parse("t").unwrap()).unwrap();
            s.add_retraction(&gone.id(), &me.public()).unwrap();
            assert!(
                !s.insert_post(&gone).unwrap(),
                "a retracted post is refused"
            );
            s.flush().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get_post(&p.id()).unwrap().unwrap(), *p.signed());
        assert_eq!(s.joined_topics().unwrap().len(), 1);
        assert_eq!(s.count_topic(&TopicName::parse("t").unwrap()).unwrap(), 1);
        assert!(!s.insert_post(&gone).unwrap());
    }

    #[test]
    fn a_store_in_use_is_named_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        match Store::open(dir.path()) {
            Err(e) => assert!(e.to_string().contains("in use"), "{e}"),
            Ok(_) => panic!("a second open of the same directory must fail"),
        }
    }

    #[test]
    fn sync_scans_are_ordered_and_bounded() {
        let s = Store::temporary().unwrap();
        let me = Identity::generate(None);
        for i in 0..20 {
            s.insert_post(&post(&me, "t", &format!("p{i}"), 100 + i))
                .unwrap();
        }
        let scope = SyncScope::Topic(TopicName::parse("t").unwrap());
        let mut keys = Vec::new();
        s.scan_keys(&scope, &ItemKey::MIN, &ItemKey::MAX, &mut |k| {
            keys.push(*k);
            true
        })
        .unwrap();
        assert_eq!(keys.len(), 20);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let items = s
            .items_in(&scope, &keys[5], &ItemKey::MAX, 3, usize::MAX)
            .unwrap();
        assert_eq!(
            items.iter().map(|i| i.0).collect::<Vec<_>>(),
            keys[5..8].to_vec()
        );
        let by_keys = s.items_by_keys(&scope, &keys[..2]).unwrap();
        assert_eq!(by_keys.len(), 2);
        assert!(matches!(Message::decode(&by_keys[0]), Ok(Message::Post(_))));
    }
}
