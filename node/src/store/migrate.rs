//! Moving a store of layout 1 (a tree per kind, written with cross-tree
//! transactions) forward to layout 2 (one `items` tree under prefixes).
//!
//! The migration copies every post, log item, retraction and tombstone
//! into `items` (idempotent writes, counts recomputed from the posts), then
//! the caller writes the new layout version and flushes, and only then are
//! the old trees dropped. A crash before the version is written runs the
//! migration again from the untouched old trees; a crash after it leaves
//! old trees that the next open drops.

use std::collections::HashMap;

use protocol::sync::ItemKey;

use super::error::During;
use super::keys::{
    author_key, encode_u64, item_key_bytes, parse_id, parse_item_key, post_place, prefixed,
    retraction_key, split_retraction_key, split_topic_key, topic_key, AUTHOR, COUNT, EVER, LOG,
    POST, POST_ID, RETRACTION, TOMBSTONE, TOMBSTONE_ID,
};
use super::{decode_post, Store, StoreError};

/// The trees of layout 1 that layout 2 replaces.
const OLD_TREES: [&str; 8] = [
    "posts",
    "topic_index",
    "author_index",
    "counts",
    "log",
    "retractions",
    "tombstones",
    "tombstone_ids",
];

/// Entries written per batch while migrating.
const BATCH: usize = 1024;

/// Whether the database has a tree of this name (without creating it).
fn has_tree(store: &Store, name: &str) -> bool {
    store
        .b()
        .db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == name.as_bytes())
}

/// A tree of the old layout, if the database has it.
fn old_tree(store: &Store, name: &str) -> Result<Option<sled::Tree>, StoreError> {
    if !has_tree(store, name) {
        return Ok(None);
    }
    store
        .b()
        .db
        .open_tree(name)
        .map(Some)
        .during("open a tree of the old layout")
}

/// Writes `entries` into `items` in batches.
struct Writer<'a> {
    items: &'a sled::Tree,
    batch: sled::Batch,
    len: usize,
}

impl Writer<'_> {
    fn insert(&mut self, k: Vec<u8>, v: impl Into<sled::IVec>) -> Result<(), StoreError> {
        self.batch.insert(k, v);
        self.len += 1;
        if self.len >= BATCH {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        if self.len > 0 {
            self.items
                .apply_batch(std::mem::take(&mut self.batch))
                .during("migrate the store")?;
            self.len = 0;
        }
        Ok(())
    }
}

/// Copies a layout-1 store (or one from before layout versions) into the
/// `items` tree.
pub(super) fn from_layout_1(store: &Store) -> Result<(), StoreError> {
    let b = store.b();
    let mut w = Writer {
        items: &b.items,
        batch: sled::Batch::default(),
        len: 0,
    };
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut migrated = 0u64;
    if let Some(posts) = old_tree(store, "posts")? {
        for kv in posts.iter() {
            let (k, v) = kv.during("read posts of the old layout")?;
            let Some(post) = decode_post(&v) else {
                tracing::warn!("migration: skipping a stored post that does not decode");
                continue;
            };
            let id = post.id();
            if parse_id(&k) != Some(id.0) {
                tracing::warn!(post = %id.short(), "migration: skipping a post stored under another id");
                continue;
            }
            let key = ItemKey {
                created_at: post.content.created_at,
                id: id.0,
            };
            let topic = post.content.topic.as_str().as_bytes().to_vec();
            w.insert(prefixed(POST, &topic_key(&topic, &key)), v)?;
            w.insert(prefixed(POST_ID, &id.0), post_place(key.created_at, &topic))?;
            w.insert(
                prefixed(AUTHOR, &author_key(&post.content.author.0, &key)),
                topic.clone(),
            )?;
            *counts.entry(topic).or_default() += 1;
            migrated += 1;
        }
    }
    for (topic, n) in &counts {
        w.insert(prefixed(COUNT, topic), &encode_u64(*n)[..])?;
        w.insert(prefixed(EVER, topic), &encode_u64(*n)[..])?;
    }
    if let Some(log) = old_tree(store, "log")? {
        let mut logged = 0u64;
        for kv in log.iter() {
            let (k, v) = kv.during("read the old community log")?;
            if let Some(key) = parse_item_key(&k) {
                w.insert(prefixed(LOG, &item_key_bytes(&key)), v)?;
                logged += 1;
            }
        }
        w.insert(prefixed(EVER, super::LOG_SCOPE), &encode_u64(logged)[..])?;
    }
    if let Some(retractions) = old_tree(store, "retractions")? {
        for kv in retractions.iter() {
            let (k, v) = kv.during("read old retractions")?;
            // Layout 1: post ‖ author → ∅; before it: post → author.
            let pair = split_retraction_key(&k).or_else(|| Some((parse_id(&k)?, parse_id(&v)?)));
            if let Some((post, author)) = pair {
                w.insert(
                    prefixed(RETRACTION, &retraction_key(&post, &author)),
                    &[][..],
                )?;
            }
        }
    }
    if let Some(tombstones) = old_tree(store, "tombstones")? {
        for kv in tombstones.iter() {
            let (k, v) = kv.during("read old tombstones")?;
            if let Some((topic, key)) = split_topic_key(&k) {
                let tkey = prefixed(TOMBSTONE, &topic_key(topic, &key));
                w.insert(prefixed(TOMBSTONE_ID, &key.id), tkey.clone())?;
                w.insert(tkey, v)?;
            }
        }
    }
    w.finish()?;
    if migrated > 0 {
        tracing::info!(posts = migrated, "moved the store to layout 2");
    }
    Ok(())
}

/// Drops the trees of layout 1 (after the migration is durable).
pub(super) fn drop_old_trees(store: &Store) -> Result<(), StoreError> {
    for name in OLD_TREES {
        if has_tree(store, name) {
            store
                .b()
                .db
                .drop_tree(name)
                .during("drop a tree of the old layout")?;
        }
    }
    Ok(())
}
