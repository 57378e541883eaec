//! Each author's posts, in memory, rebuilt at open from the author log.
//!
//! Why not an index entry per post: an author's entries sit at random
//! places of the tree (authors interleave), and sled 0.34 pays 8 to 15 µs
//! for each key a batch adds at a random place, however the batch is
//! sorted or sized (`cargo run --release -p mutual-bench --example
//! sled_floor`: the store's old shape with an author entry per post cost
//! 33 µs per post, the same without it 19). So a batch writes one author
//! log entry (`w ‖ seq`) listing the authors of the posts it adds and
//! deletes, and the index lives here: the per-author limit, an author's
//! newest post and a block's deletions all read it without touching disk.
//!
//! The log entry is in the same atomic batch as the posts it names, so
//! after a crash the index rebuilt at open matches the posts.
//!
//! The same fold gives the id index (where each post lives, by id): an
//! id entry per post on disk would be a key at a random place again, and
//! sled charged 15 µs of a post's 24 for it (`sled_floor "layout 4"`).

use std::collections::HashMap;

use protocol::sync::ItemKey;

use super::keys::{Tag, ID_LEN, TAG_LEN};

/// One post of an author: where it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    /// Its time and id (its place within its topic).
    pub(super) key: ItemKey,
    /// Its topic's tag.
    pub(super) topic: Tag,
}

/// One line of the author log: a post of `author` was added or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Line {
    /// Added (`true`) or deleted.
    pub(super) added: bool,
    /// The author's tag.
    pub(super) author: Tag,
    /// The post.
    pub(super) entry: Entry,
}

/// Bytes of one [`Line`]: `added ‖ T(author) ‖ created_at (BE) ‖ id ‖ T(topic)`.
const LINE_LEN: usize = 1 + TAG_LEN + 8 + ID_LEN + TAG_LEN;

impl Line {
    /// The value of an author log entry holding `lines`.
    pub(super) fn encode_all(lines: &[Line]) -> Vec<u8> {
        let mut out = Vec::with_capacity(lines.len() * LINE_LEN);
        for l in lines {
            out.push(u8::from(l.added));
            out.extend_from_slice(&l.author);
            out.extend_from_slice(&l.entry.key.created_at.to_be_bytes());
            out.extend_from_slice(&l.entry.key.id);
            out.extend_from_slice(&l.entry.topic);
        }
        out
    }

    /// The lines of an author log entry; `None` if it is damaged.
    pub(super) fn decode_all(bytes: &[u8]) -> Option<Vec<Line>> {
        if !bytes.len().is_multiple_of(LINE_LEN) {
            return None;
        }
        bytes
            .chunks_exact(LINE_LEN)
            .map(|c| {
                let (added, rest) = c.split_first()?;
                let (author, rest) = rest.split_at(TAG_LEN);
                let (at, rest) = rest.split_at(8);
                let (id, topic) = rest.split_at(ID_LEN);
                Some(Line {
                    added: match added {
                        0 => false,
                        1 => true,
                        _ => return None,
                    },
                    author: author.try_into().ok()?,
                    entry: Entry {
                        key: ItemKey {
                            created_at: u64::from_be_bytes(at.try_into().ok()?),
                            id: id.try_into().ok()?,
                        },
                        topic: topic.try_into().ok()?,
                    },
                })
            })
            .collect()
    }
}

/// Every author's stored posts, oldest first, where each post lives by
/// id, and the author log's next sequence number.
#[derive(Default)]
pub(super) struct AuthorIndex {
    by_author: HashMap<Tag, Vec<Entry>>,
    ids: IdIndex,
    next: u64,
}

/// Where a post lives, without its id (the index's key holds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spot {
    created_at: u64,
    topic: Tag,
}

/// Every stored post's place, by id. Keyed by the id's first 8 bytes,
/// which tell ids apart but for a collision (an author can grind two ids
/// of their own that share them): a post whose 8 bytes are taken goes to
/// `spill`, under its whole id. A look-up by the first 8 bytes alone may
/// thus name the place of another post: the caller reads the post key,
/// which holds the whole id, and finds nothing there.
#[derive(Default)]
struct IdIndex {
    by_prefix: HashMap<u64, Spot>,
    spill: HashMap<[u8; ID_LEN], Spot>,
}

impl IdIndex {
    fn prefix(id: &[u8; ID_LEN]) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&id[..8]);
        u64::from_be_bytes(first)
    }

    /// Adds a post that is not in the index.
    fn add(&mut self, entry: &Entry) {
        let spot = Spot {
            created_at: entry.key.created_at,
            topic: entry.topic,
        };
        match self.by_prefix.entry(Self::prefix(&entry.key.id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(spot);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.spill.insert(entry.key.id, spot);
            }
        }
    }

    /// Removes a post that is in the index.
    fn remove(&mut self, id: &[u8; ID_LEN]) {
        if self.spill.remove(id).is_none() {
            self.by_prefix.remove(&Self::prefix(id));
        }
    }

    /// Where post `id` lives if it is stored (see [`IdIndex`] for why it
    /// may name a place that does not hold it).
    fn place(&self, id: &[u8; ID_LEN]) -> Option<Entry> {
        let spot = self
            .spill
            .get(id)
            .or_else(|| self.by_prefix.get(&Self::prefix(id)))?;
        Some(Entry {
            key: ItemKey {
                created_at: spot.created_at,
                id: *id,
            },
            topic: spot.topic,
        })
    }

    fn clear(&mut self) {
        self.by_prefix.clear();
        self.spill.clear();
    }
}

impl AuthorIndex {
    /// The sequence number of the next author log entry.
    pub(super) fn next_seq(&self) -> u64 {
        self.next
    }

    /// Author log entry `seq` holding `lines` is written (or was read at
    /// open, in order).
    pub(super) fn apply(&mut self, seq: u64, lines: &[Line]) {
        self.next = self.next.max(seq.saturating_add(1));
        for line in lines {
            if line.added {
                self.add(&line.author, line.entry);
            } else {
                self.remove(&line.author, &line.entry.key);
            }
        }
    }

    fn add(&mut self, author: &Tag, entry: Entry) {
        let posts = self.by_author.entry(*author).or_default();
        // Mostly in time order (posts arrive and sync oldest first):
        // append without a search.
        if posts.last().is_none_or(|last| *last < entry) {
            posts.push(entry);
            self.ids.add(&entry);
            return;
        }
        if let Err(i) = posts.binary_search(&entry) {
            posts.insert(i, entry);
            self.ids.add(&entry);
        }
    }

    fn remove(&mut self, author: &Tag, key: &ItemKey) {
        if let Some(posts) = self.by_author.get_mut(author) {
            let i = posts.partition_point(|e| e.key < *key);
            if posts.get(i).is_some_and(|e| e.key == *key) {
                posts.remove(i);
                self.ids.remove(&key.id);
            }
            if posts.is_empty() {
                self.by_author.remove(author);
            }
        }
    }

    /// Where post `id` lives if it is stored: its key and topic. The
    /// caller reads that key to know (an id sharing its first 8 bytes
    /// with a stored one's gets that one's place, which does not hold it).
    pub(super) fn place(&self, id: &[u8; ID_LEN]) -> Option<Entry> {
        self.ids.place(id)
    }

    /// Ids of stored posts that start with `prefix`, smallest first, at
    /// most `limit`: a walk of the index (a person resolving a short id).
    pub(super) fn ids_with_prefix(&self, prefix: &[u8], limit: usize) -> Vec<[u8; ID_LEN]> {
        let mut out: Vec<[u8; ID_LEN]> = self
            .by_author
            .values()
            .flatten()
            .map(|e| e.key.id)
            .filter(|id| id.starts_with(prefix))
            .collect();
        out.sort_unstable();
        out.dedup();
        out.truncate(limit);
        out
    }

    /// The posts of the author whose tag is `author`, oldest first.
    pub(super) fn of(&self, author: &Tag) -> &[Entry] {
        self.by_author.get(author).map_or(&[], Vec::as_slice)
    }

    /// Whether the post at `key` by `author` is stored: the duplicate
    /// check of an arriving post, without a read of the tree (a look-up
    /// at a random place costs sled as much as a tenth of a post's write).
    pub(super) fn holds(&self, author: &Tag, key: &ItemKey) -> bool {
        let posts = self.of(author);
        let i = posts.partition_point(|e| e.key < *key);
        posts.get(i).is_some_and(|e| e.key == *key)
    }

    /// How many posts of `author` were created in `[from, to]`, at most
    /// `limit`: the per-author limit's question, by two binary searches.
    pub(super) fn count_between(&self, author: &Tag, from: u64, to: u64, limit: usize) -> usize {
        if from > to {
            return 0;
        }
        let posts = self.of(author);
        let lo = posts.partition_point(|e| e.key.created_at < from);
        let hi = posts.partition_point(|e| e.key.created_at <= to);
        hi.saturating_sub(lo).min(limit)
    }

    /// The author of post `id` and its entry, by a walk of the whole index
    /// (only for damage, when the post itself cannot be read).
    pub(super) fn find(&self, id: &[u8; ID_LEN]) -> Option<(Tag, Entry)> {
        self.by_author
            .iter()
            .find_map(|(a, posts)| posts.iter().find(|e| e.key.id == *id).map(|e| (*a, *e)))
    }

    /// Every (author, post) in the index.
    pub(super) fn all(&self) -> impl Iterator<Item = (&Tag, &Entry)> {
        self.by_author
            .iter()
            .flat_map(|(a, posts)| posts.iter().map(move |e| (a, e)))
    }

    /// Forgets every post (before a rebuild), keeping the sequence.
    pub(super) fn clear(&mut self) {
        self.by_author.clear();
        self.ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(added: bool, author: u8, at: u64) -> Line {
        Line {
            added,
            author: [author; TAG_LEN],
            entry: Entry {
                key: ItemKey {
                    created_at: at,
                    id: [at as u8; ID_LEN],
                },
                topic: [9; TAG_LEN],
            },
        }
    }

    #[test]
    fn lines_round_trip_and_damage_reads_as_none() {
        let lines = vec![line(true, 7, 1), line(false, 8, 2)];
        let bytes = Line::encode_all(&lines);
        assert_eq!(Line::decode_all(&bytes), Some(lines));
        assert_eq!(Line::decode_all(&bytes[1..]), None);
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert_eq!(Line::decode_all(&bad), None);
    }

    #[test]
    fn the_index_follows_additions_and_deletions_in_log_order() {
        let mut index = AuthorIndex::default();
        index.apply(
            0,
            &[line(true, 7, 30), line(true, 7, 10), line(true, 8, 20)],
        );
        index.apply(3, &[line(false, 7, 30), line(true, 7, 40)]);
        let times: Vec<u64> = index
            .of(&[7; TAG_LEN])
            .iter()
            .map(|e| e.key.created_at)
            .collect();
        assert_eq!(times, vec![10, 40]);
        let key = |at: u64| ItemKey {
            created_at: at,
            id: [at as u8; ID_LEN],
        };
        assert!(index.holds(&[7; TAG_LEN], &key(40)));
        assert!(!index.holds(&[7; TAG_LEN], &key(30)), "deleted");
        assert!(!index.holds(&[8; TAG_LEN], &key(40)), "another author's");
        assert_eq!(index.count_between(&[7; TAG_LEN], 10, 39, 5), 1);
        assert_eq!(index.count_between(&[7; TAG_LEN], 0, 100, 1), 1);
        assert_eq!(index.count_between(&[7; TAG_LEN], 50, 0, 5), 0);
        assert_eq!(index.next_seq(), 4);
        assert_eq!(
            index.find(&[20; ID_LEN]).map(|(a, _)| a),
            Some([8; TAG_LEN])
        );
        index.apply(4, &[line(false, 8, 20)]);
        assert!(index.of(&[8; TAG_LEN]).is_empty());
        assert_eq!(index.all().count(), 2);
    }

    /// A line adding a post whose id is `id`.
    fn with_id(author: u8, at: u64, id: [u8; ID_LEN]) -> Line {
        let mut l = line(true, author, at);
        l.entry.key.id = id;
        l
    }

    #[test]
    fn every_post_is_found_by_id_even_when_ids_share_their_first_bytes() {
        let mut index = AuthorIndex::default();
        let mut a = [1u8; ID_LEN];
        let mut b = [1u8; ID_LEN];
        a[31] = 0xaa;
        b[31] = 0xbb;
        let mut never = [1u8; ID_LEN];
        never[31] = 0xcc;
        index.apply(0, &[with_id(7, 10, a), with_id(8, 20, b)]);
        let at = |index: &AuthorIndex, id: &[u8; ID_LEN]| {
            index.place(id).map(|e| (e.key.created_at, e.key.id))
        };
        assert_eq!(at(&index, &a), Some((10, a)));
        assert_eq!(at(&index, &b), Some((20, b)));
        // An unknown id with the same first bytes gets a place under its
        // own id, which holds nothing: the caller's read tells.
        assert_eq!(at(&index, &never).map(|(_, id)| id), Some(never));
        assert_eq!(at(&index, &[2; ID_LEN]), None);
        assert_eq!(index.ids_with_prefix(&[1, 1], 5), vec![a, b]);
        assert_eq!(index.ids_with_prefix(&[1, 1], 1), vec![a]);
        // Deleting the first leaves the second found, and the reverse.
        let mut gone = with_id(7, 10, a);
        gone.added = false;
        index.apply(1, &[gone]);
        assert_eq!(at(&index, &a), None);
        assert_eq!(at(&index, &b), Some((20, b)));
        index.apply(2, &[with_id(7, 10, a)]);
        let mut gone = with_id(8, 20, b);
        gone.added = false;
        index.apply(3, &[gone]);
        assert_eq!(at(&index, &a), Some((10, a)));
        assert_eq!(index.ids_with_prefix(&[1], 5), vec![a]);
        // Deleting a post that is not stored changes nothing.
        let mut stranger = with_id(9, 10, a);
        stranger.added = false;
        index.apply(4, &[stranger]);
        assert_eq!(at(&index, &a), Some((10, a)));
        index.clear();
        assert_eq!(at(&index, &a), None);
    }
}
