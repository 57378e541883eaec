//! Byte layout of the store's keys and small values (layout 5).
//!
//! Everything a batch of arrivals writes lives in one sled tree (`items`),
//! under a one-byte prefix per kind, so one `apply_batch` writes a page of
//! posts, their index entries and counts atomically, with no cross-tree
//! transaction. `T(x)` is the [`Tag`] of a topic name or author key (a
//! keyed hash, see [`super::seal`]); `seal(x)` is `x` encrypted under the
//! value key with the entry's key as associated data:
//!
//! | prefix | key after the prefix                 | value                                 |
//! |--------|--------------------------------------|---------------------------------------|
//! | `p`    | T(topic) ‖ created_at (BE) ‖ post id | seal(encoded `Message::Post`)         |
//! | `w`    | sequence number (u64 BE)             | author log lines (see below)          |
//! | `c`    | T(topic)                             | post count (u64 BE)                   |
//! | `m`    | T(topic)                             | seal(topic name)                      |
//! | `l`    | created_at (BE) ‖ id                 | seal(encoded `Message` of the log)    |
//! | `r`    | post id ‖ T(author who retracted it) | seal(that author's key)               |
//! | `t`    | T(topic) ‖ created_at (BE) ‖ post id | seal(tombstone bytes)                 |
//! | `u`    | post id                              | its `t` key                           |
//! | `n`    | T(topic) (empty: the community log)  | items ever stored there (u64 BE)      |
//!
//! The author log holds one entry per batch that adds or deletes posts:
//! for each, `added ‖ T(author) ‖ created_at ‖ id ‖ T(topic)`. Folded in
//! order at open, it is the index of each author's posts and of every
//! post by id, which live in memory ([`super::authors`]). Layout 3 kept
//! the author index on disk instead, one `a` entry per post
//! (`T(author) ‖ created_at ‖ id` → `T(topic)`); the migration to layout 4
//! turns those into author log entries. Layouts 3 and 4 kept an `i` entry
//! per post (`id` → `created_at ‖ T(topic)`); the migration to layout 5
//! deletes them.
//!
//! Times are big-endian so that byte order is time order: every "newest
//! first", "since" or sync range read is one range scan. Tags have a fixed
//! length, so `T(topic)` is a prefix no other topic's keys share.
//!
//! Every parser here returns `None` on bytes of the wrong shape instead of
//! panicking: the store skips such entries (with a warning) or reports them
//! from `check_integrity`.

use protocol::sync::ItemKey;

pub(super) use super::seal::{Tag, TAG_LEN};

/// Length of `created_at (BE) ‖ id`, the suffix every item key ends with.
pub(super) const ITEM_KEY_LEN: usize = 40;
/// Length of a post id, public key or any other 32-byte hash.
pub(super) const ID_LEN: usize = 32;

/// A post under its time-ordered place in its topic.
pub(super) const POST: u8 = b'p';
/// Layouts 3 and 4's post id → where the post lives (migrated away).
pub(super) const POST_ID: u8 = b'i';
/// Layout 3's index entry of a post under its author (migrated away).
pub(super) const AUTHOR: u8 = b'a';
/// The author log (the index of each author's posts, as a log).
pub(super) const AUTHOR_LOG: u8 = b'w';
/// A topic's post count.
pub(super) const COUNT: u8 = b'c';
/// A topic's name, sealed, under its tag: how a tag is named again (in
/// `topic_of`, the stored-ever counts, the record of acknowledged writes).
pub(super) const NAME: u8 = b'm';
/// The community log.
pub(super) const LOG: u8 = b'l';
/// Who retracted which post.
pub(super) const RETRACTION: u8 = b'r';
/// What remains of a hidden post, at its place in its topic.
pub(super) const TOMBSTONE: u8 = b't';
/// Post id → its tombstone's key.
pub(super) const TOMBSTONE_ID: u8 = b'u';
/// Items ever stored in a scope (a topic's tag; empty for the community
/// log): only grows, so a store that holds a smaller number than was once
/// made durable lost acknowledged writes (see `Store::stored_ever`).
pub(super) const EVER: u8 = b'n';

/// `prefix ‖ rest`.
pub(super) fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

/// The bounds `[prefix ‖ start, prefix ‖ end)` of a range of one kind.
pub(super) fn kind_range(prefix: u8, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (prefixed(prefix, start), prefixed(prefix, end))
}

/// `[prefix, prefix + 1)`: every key of one kind.
pub(super) fn whole_kind(prefix: u8) -> (Vec<u8>, Vec<u8>) {
    (vec![prefix], vec![prefix + 1])
}

/// A tag stored as a value or key.
pub(super) fn parse_tag(bytes: &[u8]) -> Option<Tag> {
    bytes.try_into().ok()
}

/// `created_at (BE) ‖ id`: the log's key, and the tail of every index key.
pub(super) fn item_key_bytes(key: &ItemKey) -> [u8; ITEM_KEY_LEN] {
    let mut out = [0u8; ITEM_KEY_LEN];
    let (at, id) = out.split_at_mut(8);
    at.copy_from_slice(&key.created_at.to_be_bytes());
    id.copy_from_slice(&key.id);
    out
}

/// Parses exactly 40 bytes written by [`item_key_bytes`].
pub(super) fn parse_item_key(bytes: &[u8]) -> Option<ItemKey> {
    if bytes.len() != ITEM_KEY_LEN {
        return None;
    }
    let (at, id) = bytes.split_at(8);
    Some(ItemKey {
        created_at: u64::from_be_bytes(at.try_into().ok()?),
        id: id.try_into().ok()?,
    })
}

/// `T(topic)`: every key of one topic starts with it.
pub(super) fn topic_prefix(topic: &Tag) -> Vec<u8> {
    let mut k = Vec::with_capacity(TAG_LEN + ITEM_KEY_LEN);
    k.extend_from_slice(topic);
    k
}

/// A key past every key of the topic (`T(topic) ‖ 0xff × 41`: longer than
/// any item key, and never smaller).
pub(super) fn topic_end(topic: &Tag) -> Vec<u8> {
    let mut k = topic_prefix(topic);
    k.extend_from_slice(&[0xff; ITEM_KEY_LEN + 1]);
    k
}

/// `T(topic) ‖ created_at (BE) ‖ id`: a post's or a tombstone's key.
pub(super) fn topic_key(topic: &Tag, key: &ItemKey) -> Vec<u8> {
    let mut k = topic_prefix(topic);
    k.extend_from_slice(&item_key_bytes(key));
    k
}

/// Splits a [`topic_key`] into the topic's tag and the item key.
pub(super) fn split_topic_key(k: &[u8]) -> Option<(Tag, ItemKey)> {
    if k.len() != TAG_LEN + ITEM_KEY_LEN {
        return None;
    }
    let (topic, tail) = k.split_at(TAG_LEN);
    Some((topic.try_into().ok()?, parse_item_key(tail)?))
}

/// `T(author) ‖ created_at (BE) ‖ id`: a key of layout 3's author index.
#[cfg(test)]
pub(super) fn author_key(author: &Tag, key: &ItemKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(TAG_LEN + ITEM_KEY_LEN);
    k.extend_from_slice(author);
    k.extend_from_slice(&item_key_bytes(key));
    k
}

/// Splits an [`author_key`] into the author's tag and the item key.
pub(super) fn split_author_key(k: &[u8]) -> Option<(Tag, ItemKey)> {
    if k.len() != TAG_LEN + ITEM_KEY_LEN {
        return None;
    }
    let (author, tail) = k.split_at(TAG_LEN);
    Some((author.try_into().ok()?, parse_item_key(tail)?))
}

/// `post id ‖ T(author)`: a key of the retractions. One entry per
/// retracting key, so a bogus retraction signed by someone else can never
/// overwrite the author's own.
pub(super) fn retraction_key(post: &[u8; ID_LEN], author: &Tag) -> [u8; ID_LEN + TAG_LEN] {
    let mut k = [0u8; ID_LEN + TAG_LEN];
    let (p, a) = k.split_at_mut(ID_LEN);
    p.copy_from_slice(post);
    a.copy_from_slice(author);
    k
}

/// The post id of a [`retraction_key`].
pub(super) fn retraction_post(k: &[u8]) -> Option<[u8; ID_LEN]> {
    if k.len() != ID_LEN + TAG_LEN {
        return None;
    }
    k.get(..ID_LEN)?.try_into().ok()
}

/// A 32-byte id or key stored as a value or key.
pub(super) fn parse_id(bytes: &[u8]) -> Option<[u8; ID_LEN]> {
    bytes.try_into().ok()
}

/// A counter or time stored as 8 big-endian bytes.
pub(super) fn encode_u64(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Parses what [`encode_u64`] wrote.
pub(super) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// A short hex form of the end of a key, for logs and integrity reports:
/// enough to find the entry, never a post's content.
pub(super) fn hex_tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(6);
    bytes
        .get(start..)
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let a = ItemKey {
            created_at: 5,
            id: [9; 32],
        };
        let b = ItemKey {
            created_at: 256,
            id: [1; 32],
        };
        assert!(item_key_bytes(&a) < item_key_bytes(&b));
        assert_eq!(parse_item_key(&item_key_bytes(&b)), Some(b));
        let t = [3u8; TAG_LEN];
        let tk = topic_key(&t, &a);
        assert_eq!(split_topic_key(&tk), Some((t, a)));
        assert!(tk.starts_with(&topic_prefix(&t)));
        assert!(tk.as_slice() < topic_end(&t).as_slice());
        assert!(topic_key(&t, &ItemKey::MAX).as_slice() < topic_end(&t).as_slice());
        let ak = author_key(&[7; TAG_LEN], &b);
        assert_eq!(split_author_key(&ak), Some(([7; TAG_LEN], b)));
        let rk = retraction_key(&[1; 32], &[2; TAG_LEN]);
        assert_eq!(retraction_post(&rk), Some([1; 32]));
        assert_eq!(retraction_post(&rk[1..]), None);
    }

    #[test]
    fn malformed_keys_are_refused_not_panicked_on() {
        assert_eq!(parse_item_key(&[1, 2, 3]), None);
        assert_eq!(split_topic_key(&[]), None);
        assert_eq!(split_topic_key(&[0; 40]), None, "no topic");
        assert_eq!(split_author_key(&[0; 71]), None);
        assert_eq!(parse_u64(&[1, 2]), None);
        assert_eq!(hex_tail(&[]), "");
        assert_eq!(hex_tail(&[0xab, 0xcd]), "abcd");
    }
}
