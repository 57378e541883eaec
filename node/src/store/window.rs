//! Each author's post times, in memory: what the per-author limit asks of
//! every arriving post ("how many posts of this author within a minute of
//! this one?") answered by a binary search instead of a range read of the
//! author index. An author's times are read from the index the first time
//! they are asked for, and kept up to date by every write after that.

use std::collections::HashMap;

use super::error::During;
use super::keys::{prefixed, split_author_key, Tag, AUTHOR, ID_LEN};
use super::StoreError;

/// Times kept at most (8 bytes each, plus the map's own cost): past this
/// the cache is emptied and refilled as authors are asked for again.
const MAX_TIMES: usize = 4_000_000;

/// Sorted post times per author, for the authors asked about so far.
#[derive(Default)]
pub(super) struct AuthorTimes {
    by_author: HashMap<[u8; ID_LEN], Vec<u64>>,
    total: usize,
}

impl AuthorTimes {
    /// How many posts `author` created in `[from, to]`, at most `limit`.
    pub(super) fn count_between(
        &mut self,
        items: &sled::Tree,
        author: &[u8; ID_LEN],
        tag: &Tag,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        if from > to {
            return Ok(0);
        }
        let times = self.load(items, author, tag)?;
        let lo = times.partition_point(|t| *t < from);
        let hi = times.partition_point(|t| *t <= to);
        Ok(hi.saturating_sub(lo).min(limit))
    }

    fn load(
        &mut self,
        items: &sled::Tree,
        author: &[u8; ID_LEN],
        tag: &Tag,
    ) -> Result<&[u64], StoreError> {
        if !self.by_author.contains_key(author) {
            let mut times = Vec::new();
            for k in items.scan_prefix(prefixed(AUTHOR, tag)).keys() {
                let k = k.during("read an author's posts")?;
                if let Some((_, key)) = k.get(1..).and_then(split_author_key) {
                    times.push(key.created_at);
                }
            }
            times.sort_unstable();
            if self.total.saturating_add(times.len()) > MAX_TIMES {
                self.by_author.clear();
                self.total = 0;
            }
            self.total += times.len();
            self.by_author.insert(*author, times);
        }
        Ok(self.by_author.get(author).map_or(&[], Vec::as_slice))
    }

    /// A post of `author` at `at` was stored.
    pub(super) fn added(&mut self, author: &[u8; ID_LEN], at: u64) {
        if let Some(times) = self.by_author.get_mut(author) {
            let i = times.partition_point(|t| *t <= at);
            times.insert(i, at);
            self.total += 1;
        }
    }

    /// A post of `author` at `at` was deleted.
    pub(super) fn removed(&mut self, author: &[u8; ID_LEN], at: u64) {
        if let Some(times) = self.by_author.get_mut(author) {
            if let Ok(i) = times.binary_search(&at) {
                times.remove(i);
                self.total = self.total.saturating_sub(1);
            }
        }
    }

    /// Forgets everything (after a repair).
    pub(super) fn clear(&mut self) {
        *self = AuthorTimes::default();
    }
}
