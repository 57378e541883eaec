//! Moving a store of layout 1 (a tree per kind) or 2 (one `items` tree,
//! values in the clear) to layout 3 (sealed values, tagged keys), one of
//! layout 3 to layout 4 (the author index as a log, see
//! [`author_index_to_log`]) and one of layout 3 or 4 to layout 5 (no id
//! entries: the author log finds posts by id, see [`drop_id_entries`]).
//!
//! sled keeps old values in its segment files until it happens to rewrite
//! them, so encrypting a store in place would leave its plaintext on disk.
//! The migration therefore writes a *new* store in a directory beside the
//! old one (`<store>.v3-migrating`), through the store's own write paths,
//! makes it durable and closes it, then swaps the directories by rename
//! (`<store>` → `<store>.v2-old`, the new one → `<store>`, the parent
//! fsynced) and deletes the old one.
//!
//! A crash at any point leaves a store that opens:
//! * during the copy: the old store is untouched; the half-built directory
//!   is deleted and the migration starts again;
//! * between the two renames: [`finish_interrupted_swap`] completes the
//!   swap (the new directory was complete before the first rename);
//! * before the old directory is deleted: [`remove_leftovers`] deletes it
//!   at the next open.
//!
//! Deleting the old files does not wipe them: on an SSD (or a copy-on-write
//! file system) their blocks may stay readable to forensic tools until the
//! drive reuses them. Only a store encrypted from its creation never had
//! its content in the clear on disk (ARCHITECTURE.md, "The store").

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::sync::ItemKey;
use protocol::{PostId, PublicKey, TopicName};

use super::ack;
use super::authors::{Entry, Line};
use super::error::During;
use super::keys::{
    encode_u64, hex_tail, parse_id, parse_item_key, parse_tag, parse_u64, prefixed,
    split_author_key, AUTHOR, AUTHOR_LOG, EVER, ID_LEN, POST_ID,
};
use super::local::decode_peer_record;
use super::posts::NewPost;
use super::{decode_post, Store, StoreError, StoreKeys, LOG_SCOPE};

/// Suffix of the directory the new store is built in.
const BUILDING: &str = "v3-migrating";
/// Suffix the old store's directory takes during the swap.
const OLD: &str = "v2-old";
/// Posts stored per batch while migrating.
const BATCH: usize = 1024;
/// [`BATCH`], for the tests' sizes.
#[cfg(test)]
pub(super) const BATCH_FOR_TESTS: usize = BATCH;

/// Prefixes of layout 2's `items` tree that the migration reads (the
/// others are derived again from these).
const V2_POST: u8 = b'p';
const V2_LOG: u8 = b'l';
const V2_RETRACTION: u8 = b'r';
const V2_TOMBSTONE: u8 = b't';
const V2_EVER: u8 = b'n';

/// Layout 3 → 4, in place: turns layout 3's `a` entries (one per post)
/// into author log entries, [`BATCH`] posts per entry, each in one atomic
/// batch that also deletes the `a` entries it lists, so an interrupted
/// move resumes where it stopped at the next open. In place, because the
/// entries hold only tags and times: nothing sealed is rewritten.
pub(super) fn author_index_to_log(items: &sled::Tree) -> Result<(), StoreError> {
    let mut seq = match items.scan_prefix([AUTHOR_LOG]).keys().next_back() {
        None => 0,
        Some(k) => k
            .during("read the author log")?
            .get(1..)
            .and_then(parse_u64)
            .map_or(0, |s| s.saturating_add(1)),
    };
    loop {
        let mut batch = sled::Batch::default();
        let mut lines = Vec::with_capacity(BATCH);
        let mut seen = 0usize;
        for kv in items.scan_prefix([AUTHOR]).take(BATCH) {
            let (k, v) = kv.during("read the author index")?;
            seen += 1;
            match (k.get(1..).and_then(split_author_key), parse_tag(&v)) {
                (Some((author, key)), Some(topic)) => lines.push(Line {
                    added: true,
                    author,
                    entry: Entry { key, topic },
                }),
                _ => tracing::warn!(key = %hex_tail(&k), "dropping a malformed author index entry"),
            }
            batch.remove(k);
        }
        if seen == 0 {
            return Ok(());
        }
        batch.insert(
            prefixed(AUTHOR_LOG, &encode_u64(seq)),
            Line::encode_all(&lines),
        );
        seq += 1;
        items
            .apply_batch(batch)
            .during("move the author index to layout 4")?;
    }
}

/// Layout 4 → 5, in place: deletes the `i` entries (post id → place),
/// [`BATCH`] per atomic batch. The in-memory index folded from the author
/// log finds a post by id since layout 5, so nothing replaces them, and an
/// interrupted run resumes at the next open (the layout version is written
/// after the last batch).
pub(super) fn drop_id_entries(items: &sled::Tree) -> Result<(), StoreError> {
    loop {
        let mut batch = sled::Batch::default();
        let mut seen = 0usize;
        for k in items.scan_prefix([POST_ID]).keys().take(BATCH) {
            batch.remove(k.during("read the id entries")?);
            seen += 1;
        }
        if seen == 0 {
            return Ok(());
        }
        items
            .apply_batch(batch)
            .during("move the store to layout 5")?;
    }
}

/// `<dir>.<suffix>`, beside `dir`.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

fn io_error(during: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::Io {
        during,
        detail: e.to_string(),
    }
}

/// Makes the renames and deletions in `dir`'s parent durable.
fn sync_parent(dir: &Path) -> Result<(), StoreError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(io_error("make the migrated store durable"))?;
    }
    Ok(())
}

/// Completes a swap that a crash interrupted between its two renames: the
/// old store was moved aside, the new one (complete) not yet into place.
pub(super) fn finish_interrupted_swap(dir: &Path) -> Result<(), StoreError> {
    let building = sibling(dir, BUILDING);
    if !dir.exists() && sibling(dir, OLD).exists() && building.exists() {
        std::fs::rename(&building, dir).map_err(io_error("finish moving the store to layout 3"))?;
        sync_parent(dir)?;
        tracing::info!("finished moving the store to layout 3 (interrupted by a stop)");
    }
    Ok(())
}

/// Deletes what an interrupted migration left beside `dir`: a half-built
/// new store, or the old store after the swap. Called holding `dir`'s lock
/// (so no migration of it is under way); a failure is logged and retried at
/// the next open.
pub(super) fn remove_leftovers(dir: &Path) {
    for leftover in [sibling(dir, BUILDING), sibling(dir, OLD)] {
        if leftover.exists() {
            match std::fs::remove_dir_all(&leftover) {
                Ok(()) => tracing::info!(
                    "deleted {} (left by an interrupted migration)",
                    leftover.display()
                ),
                Err(e) => tracing::warn!("could not delete {}: {e}", leftover.display()),
            }
        }
    }
}

/// Rewrites the store of layout 1 or 2 open as `old` (in `dir`) into
/// layout 3 under `keys`, then swaps it into place (see the module docs).
pub(super) fn to_layout_3(
    dir: &Path,
    old: sled::Db,
    keys: &Arc<StoreKeys>,
) -> Result<(), StoreError> {
    let building = sibling(dir, BUILDING);
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(io_error(
            "delete a half-built store of an interrupted migration",
        ))?;
    }
    let new = Store::open_with(&building, Arc::clone(keys))?;
    let posts = copy(&old, &new)?;
    if let (Some(recorder), ack::Found::Intact(counts)) = (&new.acked, ack::read_v1(dir)) {
        let by_tag: HashMap<Vec<u8>, u64> = counts
            .into_iter()
            .filter_map(|(scope, n)| {
                if scope.is_empty() {
                    return Some((scope, n));
                }
                let topic = TopicName::parse_exact(std::str::from_utf8(&scope).ok()?).ok()?;
                Some((new.topic_tag(&topic).to_vec(), n))
            })
            .collect();
        recorder
            .reset(&by_tag)
            .map_err(io_error("write the record of acknowledged writes"))?;
    }
    new.close()?;
    drop(old);
    let aside = sibling(dir, OLD);
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(io_error("delete an old store left aside"))?;
    }
    std::fs::rename(dir, &aside).map_err(io_error("move the old store aside"))?;
    std::fs::rename(&building, dir).map_err(io_error("move the migrated store into place"))?;
    sync_parent(dir)?;
    if let Err(e) = std::fs::remove_dir_all(&aside) {
        tracing::warn!(
            "could not delete the old store at {}: {e} (retried at the next start)",
            aside.display()
        );
    }
    tracing::info!(posts, "moved the store to layout 3 (encrypted at rest)");
    Ok(())
}

/// A tree of the old store, if it has one of this name.
fn old_tree(db: &sled::Db, name: &str) -> Result<Option<sled::Tree>, StoreError> {
    if !db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == name.as_bytes())
    {
        return Ok(None);
    }
    db.open_tree(name)
        .map(Some)
        .during("open a tree of the old layout")
}

/// Every entry of `tree` (of the old store) whose key starts with
/// `prefix`, the prefix cut off.
fn entries<'a>(
    tree: Option<&'a sled::Tree>,
    prefix: &'a [u8],
) -> impl Iterator<Item = Result<(Vec<u8>, sled::IVec), StoreError>> + 'a {
    tree.into_iter().flat_map(move |t| {
        t.scan_prefix(prefix).map(move |kv| {
            let (k, v) = kv.during("read the old store")?;
            Ok((k.get(prefix.len()..).unwrap_or_default().to_vec(), v))
        })
    })
}

/// Splits a layout-1/2 tombstone key `topic ‖ 0x00 ‖ created_at ‖ id`.
fn split_old_topic_key(k: &[u8]) -> Option<(TopicName, ItemKey)> {
    let cut = k.len().checked_sub(40)?;
    let (head, tail) = k.split_at(cut);
    let (&0, name) = head.split_last()? else {
        return None;
    };
    let topic = TopicName::parse_exact(std::str::from_utf8(name).ok()?).ok()?;
    Some((topic, parse_item_key(tail)?))
}

/// How many of a batch were newly stored.
fn stored(new: Vec<bool>) -> u64 {
    new.into_iter().filter(|n| *n).count() as u64
}

/// Copies everything of the old store into `new` through its own write
/// paths. Returns the posts copied.
fn copy(old: &sled::Db, new: &Store) -> Result<u64, StoreError> {
    let items = old_tree(old, "items")?;
    let items = items.as_ref();
    // Retractions first: a retracted post that damage left stored is not
    // carried over.
    let retractions = old_tree(old, "retractions")?;
    for kv in entries(items, &[V2_RETRACTION]).chain(entries(retractions.as_ref(), &[])) {
        let (k, v) = kv?;
        // post ‖ author → ∅ (layouts 1 and 2); post → author before them.
        let pair = match k.len() {
            64 => {
                let (post, author) = k.split_at(ID_LEN);
                parse_id(post).zip(parse_id(author))
            }
            _ => parse_id(&k).zip(parse_id(&v)),
        };
        if let Some((post, author)) = pair {
            new.add_retraction(&PostId(post), &PublicKey(author))?;
        }
    }
    let mut posts = 0u64;
    let mut batch: Vec<NewPost> = Vec::with_capacity(BATCH);
    let old_posts = old_tree(old, "posts")?;
    for kv in entries(items, &[V2_POST]).chain(entries(old_posts.as_ref(), &[])) {
        let (_, v) = kv?;
        let Some(post) = decode_post(&v) else {
            tracing::warn!("migration: skipping a stored post that does not decode");
            continue;
        };
        let id = post.id();
        batch.push(new.new_post(&post, id));
        if batch.len() >= BATCH {
            posts += stored(new.insert_new(std::mem::take(&mut batch))?);
        }
    }
    posts += stored(new.insert_new(batch)?);
    let old_log = old_tree(old, "log")?;
    for kv in entries(items, &[V2_LOG]).chain(entries(old_log.as_ref(), &[])) {
        let (k, v) = kv?;
        if let Some(key) = parse_item_key(&k) {
            new.insert_log(key, &v)?;
        }
    }
    let old_tombstones = old_tree(old, "tombstones")?;
    for kv in entries(items, &[V2_TOMBSTONE]).chain(entries(old_tombstones.as_ref(), &[])) {
        let (k, v) = kv?;
        if let Some((topic, key)) = split_old_topic_key(&k) {
            new.put_tombstone(&topic, key, &v)?;
        }
    }
    for kv in entries(items, &[V2_EVER]) {
        let (scope, n) = kv?;
        let Some(n) = parse_u64(&n) else { continue };
        if scope.is_empty() {
            new.raise_ever(LOG_SCOPE, n)?;
        } else if let Some(topic) = std::str::from_utf8(&scope)
            .ok()
            .and_then(|s| TopicName::parse_exact(s).ok())
        {
            new.raise_ever(&new.topic_tag(&topic), n)?;
        }
    }
    let topics = old_tree(old, "topics")?;
    for kv in entries(topics.as_ref(), &[]) {
        let (k, v) = kv?;
        if let Some(topic) = std::str::from_utf8(&k)
            .ok()
            .and_then(|s| TopicName::parse_exact(s).ok())
        {
            new.join_topic_at(&topic, parse_u64(&v))?;
        }
    }
    let peers = old_tree(old, "peers")?;
    for kv in entries(peers.as_ref(), &[]) {
        let (peer, v) = kv?;
        if let Some(record) = decode_peer_record(&v) {
            new.put_peer(&peer, &record)?;
        }
    }
    let mutes = old_tree(old, "mutes")?;
    for kv in entries(mutes.as_ref(), &[]) {
        let (author, _) = kv?;
        if let Some(author) = parse_id(&author) {
            new.mute(&PublicKey(author))?;
        }
    }
    let meta = old_tree(old, "meta")?;
    for kv in entries(meta.as_ref(), &[]) {
        let (name, v) = kv?;
        if let Ok(name) = std::str::from_utf8(&name) {
            new.set_meta(name, &v)?;
        }
    }
    Ok(posts)
}

impl Store {
    /// Raises the stored-ever count of `scope` to `n` (the old store's
    /// count, which deleted items had raised past what it still holds).
    fn raise_ever(&self, scope: &[u8], n: u64) -> Result<(), StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        if memory.ever.get(scope).is_some_and(|held| *held >= n) {
            return Ok(());
        }
        b.items
            .insert(prefixed(EVER, scope), &encode_u64(n)[..])
            .during("write the stored-ever counts")?;
        memory.ever.insert(scope.to_vec(), n);
        self.touch();
        Ok(())
    }
}
