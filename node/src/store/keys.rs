//! Byte layout of the store's keys and small values.
//!
//! Everything a batch of arrivals writes lives in one sled tree (`items`),
//! under a one-byte prefix per kind, so one `apply_batch` writes a page of
//! posts, their index entries and counts atomically, with no cross-tree
//! transaction:
//!
//! | prefix | key after the prefix                       | value                             |
//! |--------|--------------------------------------------|-----------------------------------|
//! | `p`    | topic ‖ 0x00 ‖ created_at (BE) ‖ post id   | encoded `Message::Post` (wire bytes) |
//! | `i`    | post id                                    | created_at (BE) ‖ topic           |
//! | `a`    | author ‖ created_at (BE) ‖ post id         | topic                             |
//! | `c`    | topic                                      | post count (u64 BE)               |
//! | `l`    | created_at (BE) ‖ id                       | encoded `Message` of the community log |
//! | `r`    | post id ‖ author who retracted it          | ∅                                 |
//! | `t`    | topic ‖ 0x00 ‖ created_at (BE) ‖ post id   | tombstone bytes                   |
//! | `u`    | post id                                    | its `t` key                       |
//! | `n`    | topic (empty: the community log)           | items ever stored there (u64 BE)  |
//!
//! Times are big-endian so that byte order is time order: every "newest
//! first", "since" or sync range read is one range scan. Topic names never
//! contain 0x00 (the protocol allows only letters, digits, `-` and `_`), so
//! `topic ‖ 0x00` is a prefix no other topic's keys share, and
//! `topic ‖ 0x01` is the first key past it.
//!
//! Every parser here returns `None` on bytes of the wrong shape instead of
//! panicking: the store skips such entries (with a warning) or reports them
//! from `check_integrity`.

use protocol::sync::ItemKey;

/// Length of `created_at (BE) ‖ id`, the suffix every item key ends with.
pub(super) const ITEM_KEY_LEN: usize = 40;
/// Length of a post id, public key or any other 32-byte hash.
pub(super) const ID_LEN: usize = 32;
/// Separator between a topic name and the item key.
const TOPIC_SEP: u8 = 0;

/// A post under its time-ordered place in its topic.
pub(super) const POST: u8 = b'p';
/// Post id → where the post lives (`created_at ‖ topic`).
pub(super) const POST_ID: u8 = b'i';
/// An author's posts in time order.
pub(super) const AUTHOR: u8 = b'a';
/// A topic's post count.
pub(super) const COUNT: u8 = b'c';
/// The community log.
pub(super) const LOG: u8 = b'l';
/// Who retracted which post.
pub(super) const RETRACTION: u8 = b'r';
/// What remains of a hidden post, at its place in its topic.
pub(super) const TOMBSTONE: u8 = b't';
/// Post id → its tombstone's key.
pub(super) const TOMBSTONE_ID: u8 = b'u';
/// Items ever stored in a scope (topic name; empty for the community log):
/// only grows, so a store that holds a smaller number than was once made
/// durable lost acknowledged writes (see `Store::stored_ever`).
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

/// The value of a [`POST_ID`] entry: `created_at (BE) ‖ topic`.
pub(super) fn post_place(created_at: u64, topic: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + topic.len());
    v.extend_from_slice(&created_at.to_be_bytes());
    v.extend_from_slice(topic);
    v
}

/// Parses a [`post_place`] value.
pub(super) fn parse_post_place(v: &[u8]) -> Option<(u64, &[u8])> {
    if v.len() <= 8 {
        return None;
    }
    let (at, topic) = v.split_at(8);
    Some((u64::from_be_bytes(at.try_into().ok()?), topic))
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

/// `topic ‖ 0x00`: every key of one topic starts with it.
pub(super) fn topic_prefix(topic: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(topic.len() + 1 + ITEM_KEY_LEN);
    k.extend_from_slice(topic);
    k.push(TOPIC_SEP);
    k
}

/// `topic ‖ 0x01`: the first key after every key of the topic.
pub(super) fn topic_end(topic: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(topic.len() + 1);
    k.extend_from_slice(topic);
    k.push(TOPIC_SEP + 1);
    k
}

/// `topic ‖ 0x00 ‖ created_at (BE) ‖ id`: a key of `topic_index` and
/// `tombstones`.
pub(super) fn topic_key(topic: &[u8], key: &ItemKey) -> Vec<u8> {
    let mut k = topic_prefix(topic);
    k.extend_from_slice(&item_key_bytes(key));
    k
}

/// Splits a [`topic_key`] into the topic's bytes and the item key.
pub(super) fn split_topic_key(k: &[u8]) -> Option<(&[u8], ItemKey)> {
    let cut = k.len().checked_sub(ITEM_KEY_LEN)?;
    let (head, tail) = k.split_at(cut);
    let (&sep, topic) = head.split_last()?;
    if sep != TOPIC_SEP || topic.is_empty() || topic.contains(&TOPIC_SEP) {
        return None;
    }
    Some((topic, parse_item_key(tail)?))
}

/// `author ‖ created_at (BE) ‖ id`: a key of `author_index`.
pub(super) fn author_key(author: &[u8; ID_LEN], key: &ItemKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(ID_LEN + ITEM_KEY_LEN);
    k.extend_from_slice(author);
    k.extend_from_slice(&item_key_bytes(key));
    k
}

/// Splits an [`author_key`] into the author and the item key.
pub(super) fn split_author_key(k: &[u8]) -> Option<([u8; ID_LEN], ItemKey)> {
    if k.len() != ID_LEN + ITEM_KEY_LEN {
        return None;
    }
    let (author, tail) = k.split_at(ID_LEN);
    Some((author.try_into().ok()?, parse_item_key(tail)?))
}

/// `post id ‖ author`: a key of `retractions`. One entry per retracting
/// key, so a bogus retraction signed by someone else can never overwrite
/// the author's own.
pub(super) fn retraction_key(post: &[u8; ID_LEN], author: &[u8; ID_LEN]) -> [u8; 2 * ID_LEN] {
    let mut k = [0u8; 2 * ID_LEN];
    let (p, a) = k.split_at_mut(ID_LEN);
    p.copy_from_slice(post);
    a.copy_from_slice(author);
    k
}

/// Splits a [`retraction_key`] into the post id and the author.
pub(super) fn split_retraction_key(k: &[u8]) -> Option<([u8; ID_LEN], [u8; ID_LEN])> {
    if k.len() != 2 * ID_LEN {
        return None;
    }
    let (p, a) = k.split_at(ID_LEN);
    Some((p.try_into().ok()?, a.try_into().ok()?))
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
        let tk = topic_key(b"topic", &a);
        assert_eq!(split_topic_key(&tk), Some((&b"topic"[..], a)));
        assert!(tk.starts_with(&topic_prefix(b"topic")));
        assert!(tk.as_slice() < topic_end(b"topic").as_slice());
        let ak = author_key(&[7; 32], &b);
        assert_eq!(split_author_key(&ak), Some(([7; 32], b)));
        let rk = retraction_key(&[1; 32], &[2; 32]);
        assert_eq!(split_retraction_key(&rk), Some(([1; 32], [2; 32])));
        assert_eq!(split_retraction_key(&rk[1..]), None);
    }

    #[test]
    fn malformed_keys_are_refused_not_panicked_on() {
        assert_eq!(parse_item_key(&[1, 2, 3]), None);
        assert_eq!(split_topic_key(&[]), None);
        assert_eq!(split_topic_key(&[0; 40]), None, "no topic, no separator");
        assert_eq!(split_topic_key(&[0; 41]), None, "empty topic");
        let mut bad_sep = topic_key(b"t", &ItemKey::MIN);
        bad_sep[1] = 7;
        assert_eq!(split_topic_key(&bad_sep), None);
        assert_eq!(split_author_key(&[0; 71]), None);
        assert_eq!(parse_u64(&[1, 2]), None);
        assert_eq!(hex_tail(&[]), "");
        assert_eq!(hex_tail(&[0xab, 0xcd]), "abcd");
    }
}
