//! Range-based set reconciliation for history sync (the family of
//! Negentropy; our own design and code).
//!
//! Two nodes each hold a set of items ordered by [`ItemKey`] (creation time,
//! then id). The *initiator* learns what the *responder* holds that it lacks
//! and pulls those items; union in both directions comes from both nodes
//! initiating. The responder keeps no state between requests: every request
//! carries everything needed to answer it, so a node can answer many peers
//! and a peer cannot make it hold memory.
//!
//! # Algorithm
//!
//! Every range of keys has an [`Accumulator`]: the item count and the sum of
//! the ids as 256-bit little-endian integers (mod 2^256). It is additive, so a
//! store can cache it, and its [`Fingerprint`] (BLAKE3 of it, 16 bytes) is
//! over content only. When two ranges differ by exactly one item, the
//! difference of their sums *is* that item's id: checking that the id is
//! really there makes this *single-difference decoding* exactly as safe as
//! comparing fingerprints, and it settles a range in one step.
//!
//! A request lists ranges, contiguous from the start of the key space
//! (upper bounds delta-coded as a time difference plus the shortest id
//! prefix separating two neighbouring items; gaps marked `Skip`). Each is
//! `Sum` (the initiator's accumulator, when it has more than
//! [`MAX_HAVE_IDS`] items there) or `Have` (its ids there as 8-byte
//! prefixes; an empty list means "I have nothing: stream everything"). The
//! first request is one range over everything. For a `Sum` range the
//! responder answers `Match`; or, when it holds one item more and decoding
//! finds it, that item itself; or, when the initiator holds one item more,
//! its own accumulator alone (the initiator checks the decoded id); or else
//! a `Split` into sub-ranges of about equal count ([`FIRST_SPLIT`] for the
//! whole key space, [`SPLIT`] below), each summarised by its ids (a few
//! items), its accumulator (counts close: the initiator can decode) or its
//! fingerprint (counts far apart). The initiator compares each sub-range
//! with its own and follows up only where they differ: ids it lacks go in
//! the request's `want` list; a sub-range where the responder holds one
//! item more is asked with `Sum` (the responder decodes it); a sub-range
//! with more differences the initiator splits itself into [`SPLIT`] parts,
//! so that the responder can decode each part in the same round trip. For a
//! `Have` range the responder sends its items whose ids are not listed.
//! Responses are paged ([`MAX_ITEMS_PER_RESPONSE`],
//! [`MAX_ITEM_BYTES_PER_RESPONSE`]): a range cut short carries a
//! continuation bound and the initiator asks again from there; ranges not
//! reached are simply left unanswered and asked again. Identical sets cost
//! one round trip of about 50 bytes; 100,000-item sets where each side
//! lacks 5 cost 2 round trips (3 when one sub-range mixes differences) and
//! about 4 KB; a node with nothing receives pages of items with under 1%
//! overhead. A hostile peer is bounded by per-message caps, a depth limit
//! ([`MAX_DEPTH`]), a pending-work limit ([`MAX_PENDING`]) and a round
//! limit ([`MAX_ROUNDS`]).
//!
//! This module is pure: the node supplies the set ([`SyncSet`]) and the item
//! bytes ([`ItemSource`]), carries the messages (encoded with
//! [`crate::wire::encode_versioned`]) and validates every item through its
//! one arrival path; the state machine never assumes an item was accepted.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::topic::TopicName;

mod accumulator;
mod error;
mod initiator;
mod keys;
mod message;
mod responder;
#[cfg(test)]
mod tests;

pub use accumulator::{Accumulator, Fingerprint};
pub use error::SyncError;
pub use initiator::{Initiator, Progress, Step};
pub use message::{
    Bound, QueryMode, RangeQuery, RangeReply, ResponseStatus, ShortKey, Summary, SyncRequest,
    SyncResponse,
};
pub use responder::respond;

/// The position of an item in reconciliation order: by the author's
/// creation time, then by id. Content, not local receive time, so clock skew
/// between nodes cannot make two equal sets look different.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey {
    /// Creation time, ms since the Unix epoch, as signed by the author.
    pub created_at: u64,
    /// The item's content id.
    pub id: [u8; 32],
}

impl ItemKey {
    /// The smallest key.
    pub const MIN: ItemKey = ItemKey {
        created_at: 0,
        id: [0; 32],
    };
    /// The largest key. Ranges are half-open, so it is the end of the key
    /// space and never itself synced (no valid item is that far in the
    /// future).
    pub const MAX: ItemKey = ItemKey {
        created_at: u64::MAX,
        id: [0xff; 32],
    };
}

/// Which set two nodes reconcile: one topic's posts, or the community log
/// (moderation actions, retractions, reports), which is always synced first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SyncScope {
    /// Moderation actions, retractions and sealed reports.
    CommunityLog,
    /// The posts of one topic.
    Topic(TopicName),
}

/// Sub-ranges of the first split (of the whole key space). Large, because it
/// is paid once per session and makes each sub-range of a 100k set hold one
/// difference or none when the sets are nearly equal, so that most ranges
/// settle by decoding in the next step (about 2.7 KB for any set).
pub const FIRST_SPLIT: usize = 64;
/// Sub-ranges of every later split: few differences remain per range, so a
/// small factor keeps each level cheap.
pub const SPLIT: usize = 16;
/// The initiator lists its ids (8 bytes each, 256 bytes at most) instead of
/// an accumulator when it holds at most this many items in a range: the
/// responder can then answer with exactly the missing items, in one step.
pub const MAX_HAVE_IDS: usize = 32;
/// A sub-range of a split with at most this many items is summarised by its
/// ids (about 12 bytes each) rather than an accumulator (about 36 bytes), so
/// the initiator can ask for exactly what it lacks.
pub const MAX_IDS_PER_SUMMARY: usize = 4;
/// Most items a responder counts to say how many remain after a page
/// ([`RangeReply::Items`]'s `remaining`, for progress only): counting all of
/// them on every page made a catch-up quadratic (every page rescanned the
/// rest of the set). Beyond it, `remaining` is a lower bound.
pub const MAX_REMAINING_COUNTED: u64 = 8 * MAX_ITEMS_PER_RESPONSE as u64;
/// Most items in one response: one page of a catch-up, small enough that a
/// page is validated and stored in well under a second.
pub const MAX_ITEMS_PER_RESPONSE: usize = 512;
/// Most item bytes in one response. Half of
/// [`crate::wire::MAX_SYNC_FRAME_BYTES`], so items plus the largest possible
/// range replies (see [`MAX_SUMMARIES_PER_RESPONSE`]) always fit in a frame.
pub const MAX_ITEM_BYTES_PER_RESPONSE: usize = 1024 * 1024;
/// Most ranges (including `Skip` gaps) in one request. Each costs the
/// responder at most three passes over that range, and ranges never
/// overlap, so one request costs at most a few passes over the whole set;
/// it also bounds a request to about 320 KB.
pub const MAX_RANGES_PER_REQUEST: usize = 1024;
/// Most wanted ids in one request: each costs the responder one point
/// lookup, and the answers must fit in a page anyway.
pub const MAX_WANTS_PER_REQUEST: usize = 512;
/// Most items the responder sends for one wanted id. An 8-byte prefix plus
/// the timestamp names one item unless someone ground a collision; two
/// covers that without letting a want fetch a range.
pub const MAX_ITEMS_PER_WANT: usize = 2;
/// Most sub-range summaries and listed ids in one response, so that with
/// worst-case bounds (about 90 bytes each) the replies stay under 400 KB and
/// a response, items included, stays under the frame limit.
pub const MAX_SUMMARIES_PER_RESPONSE: usize = 4096;
/// Most round trips of one session. An honest catch-up of one million items
/// takes about 2,000 pages; beyond this a peer is stalling us on purpose.
pub const MAX_ROUNDS: u32 = 10_000;
/// Deepest nesting of sub-ranges in a session. Every honest split divides
/// one side's count in a range by [`SPLIT`] (or ends in id lists), so two
/// sets of 2^64 items need at most about 34 levels; a peer splitting more
/// finely than it honestly could is stopped here, after a bounded number of
/// passes over our set.
pub const MAX_DEPTH: u8 = 40;
/// Most ranges and wanted ids the initiator keeps pending. A peer that
/// splits every range as finely as allowed cannot grow our memory beyond a
/// few megabytes.
pub const MAX_PENDING: usize = 65_536;

/// One side's set, read in key order. The node implements it over its store
/// (the items of one [`SyncScope`]); tests over a `BTreeSet<ItemKey>`. Only
/// [`SyncSet::for_each_in`] is required: the others have default
/// implementations built on it, which a store may override with cached
/// values.
pub trait SyncSet {
    /// Calls `f` on each key in `[from, to)` in ascending order until it
    /// returns `false`. Nothing if `from >= to`.
    fn for_each_in(&self, from: &ItemKey, to: &ItemKey, f: &mut dyn FnMut(&ItemKey) -> bool);

    /// The [`Accumulator`] of the whole set, if the set keeps it at hand
    /// (a store can maintain it as items come and go); `None`, the default:
    /// computed by a scan when asked.
    fn whole_sum(&self) -> Option<Accumulator> {
        None
    }

    /// Number of keys in `[from, to)`.
    fn count_in(&self, from: &ItemKey, to: &ItemKey) -> u64 {
        if let Some(acc) = whole(from, to).then(|| self.whole_sum()).flatten() {
            return acc.count();
        }
        keys::count_up_to(self, from, to, u64::MAX)
    }

    /// The [`Accumulator`] of the ids in `[from, to)`.
    fn accumulate_in(&self, from: &ItemKey, to: &ItemKey) -> Accumulator {
        if let Some(acc) = whole(from, to).then(|| self.whole_sum()).flatten() {
            return acc;
        }
        let mut acc = Accumulator::EMPTY;
        self.for_each_in(from, to, &mut |k| {
            acc.add(&k.id);
            true
        });
        acc
    }
}

/// Whether `[from, to)` is the whole key space.
fn whole(from: &ItemKey, to: &ItemKey) -> bool {
    *from == ItemKey::MIN && *to == ItemKey::MAX
}

/// Where the responder gets the bytes of items it sends: opaque encoded
/// messages that the receiving node validates.
pub trait ItemSource {
    /// Items in `[from, to)` in ascending key order: at most `max_items`,
    /// stopping before an item that would take the total past `max_bytes`
    /// (but at least one item if there is any).
    fn items_in(
        &self,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Vec<(ItemKey, Vec<u8>)>;

    /// The items with these keys, skipping keys it does not hold.
    fn items_by_keys(&self, keys: &[ItemKey]) -> Vec<Vec<u8>>;
}

impl SyncSet for BTreeSet<ItemKey> {
    fn for_each_in(&self, from: &ItemKey, to: &ItemKey, f: &mut dyn FnMut(&ItemKey) -> bool) {
        if from >= to {
            return;
        }
        for k in self.range(*from..*to) {
            if !f(k) {
                break;
            }
        }
    }
}

/// An in-memory store: keys to item bytes. The reference implementation of
/// both traits, used by simulations.
impl SyncSet for BTreeMap<ItemKey, Vec<u8>> {
    fn for_each_in(&self, from: &ItemKey, to: &ItemKey, f: &mut dyn FnMut(&ItemKey) -> bool) {
        if from >= to {
            return;
        }
        for k in self.range(*from..*to).map(|(k, _)| k) {
            if !f(k) {
                break;
            }
        }
    }
}

impl ItemSource for BTreeMap<ItemKey, Vec<u8>> {
    fn items_in(
        &self,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Vec<(ItemKey, Vec<u8>)> {
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        let mut bytes = 0usize;
        for (k, v) in self.range(*from..*to) {
            if out.len() >= max_items
                || (!out.is_empty() && bytes.saturating_add(v.len()) > max_bytes)
            {
                break;
            }
            bytes = bytes.saturating_add(v.len());
            out.push((*k, v.clone()));
        }
        out
    }

    fn items_by_keys(&self, keys: &[ItemKey]) -> Vec<Vec<u8>> {
        keys.iter().filter_map(|k| self.get(k).cloned()).collect()
    }
}
